"""chaosgenesys.conversations."""
