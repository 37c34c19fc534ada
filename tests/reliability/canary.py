"""Importing this module leaves a marker file: proof, if it ever exists, that a table row got code imported."""

import os
from pathlib import Path

Path(os.environ.get("TABLEBEAT_CANARY_FILE", "/tmp/tablebeat-canary-imported")).write_text("imported")


def boom(*_args: object, **_kwargs: object) -> None:
    Path(os.environ.get("TABLEBEAT_CANARY_FILE", "/tmp/tablebeat-canary-imported")).write_text("called")
