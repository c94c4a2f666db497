"""Metrics, structured logs and per-request context."""
