"""tablebeat benchmark harness (issue 6): ``python -m bench all`` runs targets T1-T7.

Everything is measured from outside the processes under test where the target says so:
messages are counted in the Redis broker list, runs are counted in ``execute_task``, CPU
and RSS are read from ``/proc``.  See ``docs/performance.md`` for the method and results.
"""
