"""The ``tablebeat`` command line."""
