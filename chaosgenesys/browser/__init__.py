"""Watching a real desktop in a real browser over the DevTools protocol (issue 10; in progress)."""
