"""Output writers: atomic, incremental files."""
