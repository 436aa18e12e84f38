"""What a run left, read back for people and machines: the verdict (``verdict.py``) from the
journal (``journal.py``)."""
