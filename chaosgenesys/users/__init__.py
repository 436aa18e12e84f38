"""chaosgenesys.users."""
