"""Load and latency harness for pinpanel, with the 2015 tutorial as the baseline to beat.

Run from the repository root with the project's venv: ``python -m bench`` (see README.md).
"""
