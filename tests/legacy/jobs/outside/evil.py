"""Never listed: importing it leaves a marker, which the hostile-input tests look for."""

import os
import pathlib

pathlib.Path(os.environ.get("TABLEBEAT_TEST_IMPORT_MARKER", "/tmp/tablebeat-outside-imported")).write_text("imported")


def run() -> str:
    return "should never run"
