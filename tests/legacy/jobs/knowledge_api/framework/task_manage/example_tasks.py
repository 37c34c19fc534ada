"""003's example task functions: named parameters taken from ``func_args``, no task_key."""

from __future__ import annotations

import os as _os
from os.path import join  # noqa: F401  (imported, not defined here: never a job)


def notification_task(user_id: str, message: str, channel: str = "email") -> str:
    return f"notified {user_id} via {channel}: {message}"


def simple_task(message: str) -> str:
    return f"simple: {message}"


def data_processing_task(data_id: str, process_type: str) -> str:
    return f"processed {data_id} ({process_type})"


def _private_helper() -> str:
    return _os.getcwd()
