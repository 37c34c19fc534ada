"""The earlier systems' design documents (copied verbatim into ``documents/``) and what they hold.

Tests build their databases from each document's own DDL and post its own example bodies;
the only edits are the ones MySQL needs to parse them (listed in :data:`PARSE_FIXES`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DOCUMENTS = Path(__file__).resolve().parent / "documents"

#: Per document: (text MySQL refuses, replacement), applied to its DDL only.
PARSE_FIXES: dict[str, list[tuple[str, str]]] = {
    # aps-go: "CHARACTER NOT NULL" is not SQL; tables are created in the test's own database.
    "002": [("CHARACTER NOT NULL", "NOT NULL"), ("`task`.`", "`")],
}


def document(number: str) -> str:
    """The full text of document ``number`` ("000".."004")."""
    (path,) = DOCUMENTS.glob(f"{number}_*.txt")
    return path.read_text(encoding="utf-8")


def statements(number: str) -> list[str]:
    """The SQL statements (CREATE TABLE, INSERT) of document ``number``, with the parse fixes."""
    text = document(number)
    found = re.findall(r"^((?:CREATE TABLE|INSERT INTO)\b.*?;)\s*$", text, flags=re.S | re.M)
    out = []
    for statement in found:
        for bad, good in PARSE_FIXES.get(number, []):
            statement = statement.replace(bad, good)
        out.append(statement)
    return out


def json_examples(number: str) -> list[dict]:
    """Every ```json block of document ``number``, parsed."""
    blocks = re.findall(r"```json\s*\n(.*?)```", document(number), flags=re.S)
    return [json.loads(block) for block in blocks]
