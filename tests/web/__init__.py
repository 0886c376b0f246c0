"""Web-layer tests on the real app in process (tests/inprocess.py, the make_app fixture)."""
