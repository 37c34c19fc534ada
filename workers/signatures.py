"""How a job function is called: only with what its signature accepts, decided once.

The table hands every run ``(task_key, *args, **kwargs)`` plus the context keywords
``sub_task_id`` and ``__unique_trace_id__`` (the 000/001 calling convention).  Earlier
systems also ran functions taking nothing (004) or only named parameters (003), so:

- ``task_key`` is passed when the function has a parameter of that name, or when its
  first positional parameter is followed by ``*args`` (the 001 shape under another name);
- the context keywords are passed when a parameter of that name or ``**kwargs`` takes them;
- the row's own ``args``/``kwargs`` are always passed: a row that does not fit its
  function is a configuration error, reported in the run's traceback with the reason.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: Keywords the worker adds to every run; dropped for functions that cannot take them.
CONTEXT_KWARGS = frozenset({"sub_task_id", "__unique_trace_id__"})

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@dataclass(frozen=True, slots=True)
class CallShape:
    """What one job function accepts, read from its signature at registration."""

    job_name: str
    #: Pass task_key: "positional" (first argument), "keyword", or "" (not at all).
    task_key: str
    #: Positional parameters left after task_key; None when ``*args`` takes any number.
    positional_room: int | None
    keyword_names: frozenset[str]
    var_keyword: bool
    signature: str

    @classmethod
    def of(cls, job_name: str, func: Callable[..., Any], *, bound: bool = False) -> CallShape:
        """Read ``func``'s signature once (``bound``: its first parameter takes Celery's task, ``bind=True``).

        :raises TypeError: when it has none (a builtin), or a bound job takes no parameter.
        """
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"job {job_name!r}: cannot read the signature of {func!r}: {exc}") from None
        params = list(sig.parameters.values())
        if bound:
            if not params or params[0].kind not in _POSITIONAL:
                raise TypeError(f"job {job_name!r} has bind=True but {func.__name__}{sig} takes no task parameter")
            params = params[1:]
        positional = [p for p in params if p.kind in _POSITIONAL]
        var_positional = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
        names = {p.name for p in params if p.kind in (*_POSITIONAL, inspect.Parameter.KEYWORD_ONLY)}
        task_key = ""
        if positional and (positional[0].name == "task_key" or var_positional):
            task_key = "positional"
            positional = positional[1:]
            names.discard("task_key")
        elif "task_key" in names:
            task_key = "keyword"
        return cls(
            job_name=job_name,
            task_key=task_key,
            positional_room=None if var_positional else len(positional),
            keyword_names=frozenset(names),
            var_keyword=any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params),
            signature=f"{getattr(func, '__name__', job_name)}{sig}",
        )

    def arguments(
        self, task_key: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The positional and keyword arguments to call the function with.

        :raises TypeError: naming the job, its signature and what does not fit.
        """
        if self.positional_room is not None and len(args) > self.positional_room:
            raise TypeError(
                f"job {self.job_name!r} takes {self.positional_room} positional argument(s) besides task_key, "
                f"but the task's args give {len(args)}: {list(args)!r}; signature {self.signature}"
            )
        call_kwargs: dict[str, Any] = {}
        for name, value in kwargs.items():
            if self.var_keyword or name in self.keyword_names:
                call_kwargs[name] = value
            elif name not in CONTEXT_KWARGS:
                raise TypeError(
                    f"job {self.job_name!r} takes no argument {name!r} (from the task's kwargs); "
                    f"signature {self.signature}"
                )
        if self.task_key == "positional":
            return (task_key, *args), call_kwargs
        if self.task_key == "keyword":
            call_kwargs["task_key"] = task_key
        return tuple(args), call_kwargs
