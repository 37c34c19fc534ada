"""The job form: HTML form values to service fields and back.

The service layer validates (the same checks and messages as the API); this module only
turns text boxes into the types the service expects and says where an error belongs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from models import TriggerKind
from service.errors import ValidationFailed
from service.views import TaskView

#: Text inputs, in the order the form shows them.
TEXT_FIELDS = ("task_key", "desc", "execute_func", "trigger", "spec", "args", "kwargs", "timezone", "queue", "extra")
INTEGER_FIELDS = ("max_instances", "misfire_grace_seconds", "expires_seconds")
#: Every field the form edits; an error about any other field is shown above the form.
FORM_FIELDS = (*TEXT_FIELDS, *INTEGER_FIELDS, "is_valid")
#: The trigger choices, in the order the form offers them (interval first: the common case).
TRIGGERS = tuple(kind.value for kind in (TriggerKind.INTERVAL, TriggerKind.CRON, TriggerKind.DATE))

EMPTY_FORM: dict[str, str] = {
    "task_key": "",
    "desc": "",
    "execute_func": "",
    "trigger": "interval",
    "spec": "",
    "args": "",
    "kwargs": "{}",
    "timezone": "",
    "queue": "",
    "extra": "{}",
    "max_instances": "1",
    "misfire_grace_seconds": "",
    "expires_seconds": "",
    "is_valid": "1",
}


def fields_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """Service fields from a submitted job form. :raises ValidationFailed: for a non-integer number."""
    fields: dict[str, Any] = {name: str(form.get(name, "")) for name in TEXT_FIELDS}
    for name in INTEGER_FIELDS:
        raw = str(form.get(name, "")).strip()
        if not raw:
            fields[name] = None
            continue
        try:
            fields[name] = int(raw)
        except ValueError:
            raise ValidationFailed(name, f"must be a whole number, got {raw!r}") from None
    fields["is_valid"] = form.get("is_valid") in ("1", "on", "true")
    return fields


def form_from_task(task: TaskView) -> dict[str, str]:
    """The form's values for an existing task."""

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)

    values = {name: text(getattr(task, name)) for name in TEXT_FIELDS}
    values.update({name: text(getattr(task, name)) for name in INTEGER_FIELDS})
    values["is_valid"] = "1" if task.is_valid else ""
    return values


def form_echo(form: Mapping[str, Any]) -> dict[str, str]:
    """What the user typed, to show again next to the error."""
    values = {name: str(form.get(name, "")) for name in (*TEXT_FIELDS, *INTEGER_FIELDS)}
    values["is_valid"] = "1" if form.get("is_valid") in ("1", "on", "true") else ""
    return values


def error_placement(field: str | None) -> str | None:
    """The form field an error is shown at, or None to show it above the form."""
    if field is None:
        return None
    head = field.split(".", 1)[0]
    if head == "trigger_args":
        return "spec"
    return head if head in FORM_FIELDS else None
