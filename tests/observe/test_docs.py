"""docs/operations.md lists every metric tablebeat serves; the alert rules and the dashboard use only those."""

from __future__ import annotations

import json
import re

import yaml
from sqlalchemy import create_engine

from models.base import Base
from scheduler.metrics import BeatMetrics
from service.metrics import SqlCollector
from tests.processes import REPO
from workers.metrics import WorkerMetrics

DOC = (REPO / "docs" / "operations.md").read_text()
RULES = REPO / "deploy" / "prometheus" / "tablebeat-alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "tablebeat-dashboard.json"
_NAME = re.compile(r"\btablebeat_[a-z_]+")


def served() -> set[str]:
    """Names of every metric family beat, workers and the API serve (as exposed: counters end in _total)."""
    names: set[str] = set()
    for holder in (BeatMetrics(()), WorkerMetrics(())):
        for metric in vars(holder).values():
            if hasattr(metric, "describe"):
                family = metric.describe()[0]
                names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    names.update(family.name for family in SqlCollector(engine).collect())
    return names


def _base(name: str) -> str:
    return re.sub(r"_(bucket|count|sum)$", "", name)


def test_every_served_metric_is_documented_and_nothing_else() -> None:
    documented = set(re.findall(r"^\| `(tablebeat_[a-z_]+)` \|", DOC, re.MULTILINE))
    assert documented == served()


def test_alert_rules_and_dashboard_use_served_metrics() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert {"TablebeatBeatDown", "TablebeatLateFires", "TablebeatPendingRunsWaiting", "TablebeatFailureRate"} <= set(
        alerts
    )
    used = {_base(n) for rule in alerts.values() for n in _NAME.findall(rule["expr"])}
    dashboard = json.loads(DASHBOARD.read_text())
    used |= {_base(n) for panel in dashboard["panels"] for t in panel["targets"] for n in _NAME.findall(t["expr"])}
    assert used <= served(), used - served()
    assert all(alert in DOC for alert in alerts)
