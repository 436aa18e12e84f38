"""chaosgenesys.routing."""
