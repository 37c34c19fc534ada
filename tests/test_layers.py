"""The packages import only downward: each may import the packages listed for it, nothing above.

    conf, protocol                    (bottom: import nothing of ours; models may use conf)
    telemetry                         metrics exposition, JSON logs, OpenTelemetry glue (may use conf, protocol)
    models                            tables, engine
    alerts                            failure alerts, sent by beat and workers alike
    scheduler | workers               beat | worker; never each other
    service                           operator operations, validation, views
    api, cli                          on top

Every ``import`` is read with ``ast`` (function-level imports included), so a lazy import
cannot hide an upward arrow.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: package -> the packages of ours it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "conf": set(),
    "protocol": set(),
    "telemetry": {"conf", "protocol"},
    "models": {"conf"},
    "alerts": {"conf", "models", "protocol"},
    "scheduler": {"conf", "models", "protocol", "alerts", "telemetry"},
    "workers": {"conf", "models", "protocol", "alerts", "telemetry"},
    "service": {"conf", "models", "protocol", "alerts", "scheduler", "workers", "telemetry"},
    "api": {"conf", "models", "protocol", "service", "telemetry"},
    "cli": {"conf", "models", "protocol", "service", "api", "telemetry"},
}
OURS = {*ALLOWED, "celeryconfig", "bench", "tests"}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of ours that ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


def package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_downward(package: str) -> None:
    allowed = ALLOWED[package] | {package}
    upward = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in package_files(package)
        for name in imported_packages(path) - allowed
    }
    assert not upward, f"{package} may import only {sorted(allowed)}:\n" + "\n".join(sorted(upward))


def test_every_package_is_covered() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"bench", "tests", "build"}
    assert packages <= set(ALLOWED), f"add {sorted(packages - set(ALLOWED))} to ALLOWED with its layer"


def test_importing_beat_loads_no_workers_jobs_or_celeryconfig() -> None:
    """``celeryconfig`` may exit the process and job modules run user code: neither is an import side effect."""
    code = (
        "import sys, scheduler.beat, service.tasks; "
        "bad = sorted(m for m in sys.modules if m == 'celeryconfig' or m.split('.')[0] == 'workers'); "
        "print(','.join(bad))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing scheduler.beat / service.tasks loaded: {out.stdout.strip()}"


def test_every_package_is_installed() -> None:
    """A package missing from ``packages.find`` imports in the repo but not from ``pip install``."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    installed = {pattern.rstrip("*") for pattern in include}
    missing = sorted(p for p in ALLOWED if p not in installed)
    assert not missing, f"add {missing} to [tool.setuptools.packages.find] include in pyproject.toml"
