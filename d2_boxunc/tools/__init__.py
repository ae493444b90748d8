"""Command-line tools (``python -m d2_boxunc.tools.<name>``)."""
