"""chaosgenesys.auth."""
