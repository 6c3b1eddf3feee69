"""The deployment files: alert rules pass promtool (checked and unit-tested), dashboards and
alerts only name metric families Nidaan exposes, the compose stack is complete and sound."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import nidaan.observability.metrics  # noqa: F401 - registers the database gauges
from nidaan.kit.metrics import REGISTRY

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent
METRIC = re.compile(r"\bnidaan_[a-z_]+")
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def _exposed() -> set[str]:
    names = set()
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    # Families that appear only once something is counted (no label values yet).
    for collector in list(REGISTRY._collector_to_names):  # type: ignore[attr-defined]
        names.update(REGISTRY._collector_to_names[collector])  # type: ignore[attr-defined]
    return names


def _known(name: str, exposed: set[str]) -> bool:
    return name in exposed or any(name.removesuffix(s) in exposed for s in SUFFIXES)


def _alert_rules() -> list[dict]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alert_rules_name_only_exposed_metrics_and_cover_the_issue() -> None:
    exposed = _exposed()
    rules = _alert_rules()
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        for name in METRIC.findall(rule["expr"]):
            assert _known(name, exposed), f"{rule['alert']}: {name} is not exposed"
    names = {rule["alert"] for rule in rules}
    assert {
        "NidaanApiErrorRate",
        "NidaanApiSlow",
        "NidaanJobBacklog",
        "NidaanAnalyzerLinkDown",
        "NidaanOutboxLag",
        "NidaanSyncConflictsPiling",
        "NidaanCriticalNotAcknowledged",
        "NidaanDatabaseLarge",
    } <= names
    (link_down,) = [r for r in rules if r["alert"] == "NidaanAnalyzerLinkDown"]
    assert link_down["for"] == "5m"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_checks_and_unit_tests_the_alert_rules() -> None:
    checked = subprocess.run(
        ["promtool", "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        ["promtool", "test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_dashboard_queries_name_only_exposed_metrics() -> None:
    exposed = _exposed()
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "nidaan-overview.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in ("latency", "error", "backlog", "analyzer", "outbox", "conflicts", "critical"):
        assert topic in titles
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in METRIC.findall(target["expr"]):
                assert _known(name, exposed), f"{panel['title']}: {name}"


def test_compose_stack_is_complete_with_health_checks_and_env_file_secrets() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {
        "caddy",
        "api1",
        "api2",
        "worker",
        "interfaces",
        "relay",
        "postgres",
        "minio",
        "redis",
        "nats",
        "kafka",
        "prometheus",
        "grafana",
        "jaeger",
    } <= set(services)
    for name, service in services.items():
        if name not in {"caddy", "migrate", "relay"}:
            assert "healthcheck" in service, name
    # Secrets come from env files, never written into the compose file.
    text = (DEPLOY / "compose.yaml").read_text()
    assert not re.search(r"(SECRET_KEY|ENCRYPTION_KEYS|PASSWORD):\s*[\"']?[A-Za-z0-9]{8,}", text)
    assert services["api1"]["env_file"] == ["nidaan.env"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        t
        for job in prometheus["scrape_configs"]
        for c in job["static_configs"]
        for t in c["targets"]
    }
    assert targets == {"api1:9100", "api2:9100", "worker:9100", "interfaces:9100"}


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False
    ).returncode,
    reason="docker compose is not installed",
)
def test_docker_compose_accepts_the_stack(tmp_path: Path) -> None:
    env = {"POSTGRES_PASSWORD": "example-only", "PATH": "/usr/bin:/bin:/usr/local/bin"}
    shutil.copy(DEPLOY / "nidaan.env.example", DEPLOY / "nidaan.env")
    try:
        result = subprocess.run(
            ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
    finally:
        (DEPLOY / "nidaan.env").unlink()
    assert result.returncode == 0, result.stderr


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert len(stages) >= 3
    assert all("slim" in image for image in stages)
    assert re.search(r"^USER nidaan$", dockerfile, re.MULTILINE)
    assert "-c constraints.txt" in dockerfile
    assert "HEALTHCHECK" in dockerfile


def test_systemd_units_run_each_role_as_an_unprivileged_user() -> None:
    units = {p.name: p.read_text() for p in (DEPLOY / "systemd").glob("*.service")}
    assert {"nidaan.service", "nidaan-backup.service"} <= set(units)
    for name, unit in units.items():
        assert "User=nidaan" in unit, name
        assert "EnvironmentFile=/etc/nidaan/nidaan.env" in unit, name
        assert "NoNewPrivileges=yes" in unit, name
    timer = (DEPLOY / "systemd" / "nidaan-backup.timer").read_text()
    assert "OnCalendar=" in timer
