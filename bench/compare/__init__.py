"""``python -m bench compare``: tablebeat and its peers side by side on the same N, one beat at a time."""
