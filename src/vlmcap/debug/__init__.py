"""Debugging aids: logging set-up and request dumps."""
