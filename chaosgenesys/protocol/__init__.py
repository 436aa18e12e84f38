"""The guide's execution protocol: baseline, injection, recovery (``probes.py``)."""
