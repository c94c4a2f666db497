"""Sign-in flow, sign-out, the per-request guard, and identity headers."""
