"""Operator operations on tasks and runs (validation, writes, views), shared by ``api/``, ``cli/`` and the console."""
