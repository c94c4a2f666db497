"""Forwarding to the app behind the gateway."""
