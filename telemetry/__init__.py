"""Observability shared by beat, workers and the API: metrics exposition, JSON logs, OpenTelemetry glue.

A bottom layer beside ``conf/``: it imports nothing of ours but ``conf``. The metric
definitions themselves live with the code they count (``scheduler/metrics.py``,
``workers/metrics.py``, ``service/metrics.py``).
"""
