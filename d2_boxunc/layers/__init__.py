"""Compiled ops and their Python wrappers."""
