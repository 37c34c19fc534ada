"""Settings profiles (``local.toml``, ``test.toml``, ``online.toml``), read by :mod:`conf.profiles`.

A package only so that the TOML files are installed next to ``workers/`` by ``pip install .``.
"""
