"""tablebeat test suite (a package, so that tests/scheduler and tests/bench never shadow the real packages)."""
