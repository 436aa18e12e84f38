"""chaosgenesys.controls."""
