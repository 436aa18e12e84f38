"""chaosgenesys.platform."""
