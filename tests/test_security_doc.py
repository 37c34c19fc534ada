"""docs/security.md points every defended line at a test: those tests must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"


def defended_rows() -> list[str]:
    text = DOC.read_text()
    section = text.split("## Defended by tablebeat", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [row for row in rows if not row.startswith(("| defence", "| ---"))]


def test_every_defended_line_names_a_test_that_exists() -> None:
    rows = defended_rows()
    assert len(rows) >= 15
    for row in rows:
        refs = re.findall(r"`(tests/[\w/]+\.py)((?:::\w+)?)`|`::(\w+)`", row)
        assert refs, f"no test named in: {row}"
        current: Path | None = None
        for path, test, sibling in refs:
            if path:
                current = ROOT / path
                assert current.is_file(), f"{path} does not exist ({row[:60]})"
            name = (test or "").lstrip(":") or sibling
            if name:
                assert current is not None
                defined = {n.name for n in ast.walk(ast.parse(current.read_text())) if isinstance(n, ast.FunctionDef)}
                assert name in defined, f"{current.relative_to(ROOT)}::{name} does not exist"


def test_readme_links_the_threat_model() -> None:
    assert "(docs/security.md)" in (ROOT / "README.md").read_text()
