"""Fault tests: each fault of docs/reliability.md against real servers, HTTP in and out."""
