"""The ``vlmcap`` command line."""
