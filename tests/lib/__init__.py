"""Helpers shared by every test tier (importable as ``lib.*``: pytest puts tests/ on
sys.path through tests/conftest.py, on the host, in the UML guest and in the image tier)."""
