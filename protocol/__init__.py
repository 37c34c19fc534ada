"""The message contract shared by beat (``scheduler``) and workers: names, headers, trace IDs.

Both sides import this package and never each other.
"""
