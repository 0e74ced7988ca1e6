"""Grafana dashboards and Prometheus alert rules in ``deploy/``: well formed, and every metric they query exists.

The names are read from what the services really export: a real model server (the census example), a real
management API (with its feedback store) and a real gateway, scraped once. Rules pass ``promtool check
rules`` (``scripts/setup.sh`` unpacks promtool from Debian's prometheus package into ``.cache/``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import start_api
from tests.support.server import ServerProcess, serving

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULES = ROOT / "deploy" / "prometheus" / "legion-alerts.yml"

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
METRIC = re.compile(r"\b(legion_[a-z0-9_]+)\b")


def exported_names(text: str) -> set[str]:
    """Every series name a ``/metrics`` text can have, whether or not a labelled series was observed yet."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture(scope="module")
def exported(census_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    request = json.loads((ROOT / "examples" / "census_income" / "request.json").read_text())
    with serving(census_model_dir) as model:
        assert httpx.post(f"{model.url}/api/model/invoke", json=request).status_code == 200
        names = exported_names(httpx.get(f"{model.url}/metrics").text)
    api = start_api(tmp_path_factory.mktemp("deploy-api"), "--runtime", "memory", "--dev")
    try:
        names |= exported_names(httpx.get(f"{api.url}/metrics").text)
    finally:
        api.stop()
    routing = tmp_path_factory.mktemp("deploy-gateway") / "routing.json"
    routing.write_text(json.dumps({"etag": "empty", "deployments": [], "routes": [], "revokedTokens": []}))
    gateway = ServerProcess(routing, command=[sys.executable, "-m", "legion", "gateway", "--port", "0",
                                              "--routing-file", str(routing), "--no-auth", "--no-prediction-log"])  # fmt: skip
    try:
        gateway.wait_ready(path="/healthcheck")
        names |= exported_names(httpx.get(f"{gateway.url}/metrics").text)
    finally:
        gateway.stop()
    yield names


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"]["query"]


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_there_is_an_overview_and_a_per_model_dashboard() -> None:
    titles = {json.loads(p.read_text())["uid"]: json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert set(titles) == {"legion-overview", "legion-model"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_a_dashboard_is_well_formed(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert "datasource" in variables  # the Prometheus is chosen at import, not hard-wired
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, f"{panel['title']}: unknown variables {used - variables}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_query_names_an_exported_metric(path: Path, exported: set[str]) -> None:
    for title, expr in queries(json.loads(path.read_text())):
        names = set(METRIC.findall(expr))
        assert names, f"{title}: queries no Legion metric"
        unknown = names - exported
        assert not unknown, f"{path.name} / {title}: no service exports {sorted(unknown)}"


def test_every_alert_rule_is_complete_and_names_exported_metrics(exported: set[str]) -> None:
    found = rules()
    names = {rule["alert"] for rule in found}
    assert {"LegionModelHighErrorRate", "LegionModelHighLatency", "LegionModelAccuracyDrop",
            "LegionModelReplicaDown", "LegionDeploymentReplicasMissing"} <= names  # fmt: skip
    assert len(names) == len(found)
    for rule in found:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        unknown = set(METRIC.findall(rule["expr"])) - exported
        assert not unknown, f"{rule['alert']}: no service exports {sorted(unknown)}"


def promtool() -> str | None:
    local = ROOT / ".cache" / "prometheus" / "usr" / "bin" / "promtool"
    return shutil.which("promtool") or (str(local) if local.is_file() else None)


def test_the_rules_pass_promtool() -> None:
    tool = promtool()
    if tool is None:
        pytest.skip("promtool is not available (scripts/setup.sh unpacks it from Debian's prometheus package)")
    checked = subprocess.run(
        [tool, "check", "rules", str(RULES)], check=False, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_the_scrape_configuration_passes_promtool(tmp_path: Path) -> None:
    tool = promtool()
    if tool is None:
        pytest.skip("promtool is not available (scripts/setup.sh unpacks it from Debian's prometheus package)")
    config = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/legion.token", "legion.token"))
    (tmp_path / "legion.token").write_text("a token\n")
    shutil.copy(RULES, tmp_path / RULES.name)
    checked = subprocess.run([tool, "check", "config", "prometheus.yml"], check=False, capture_output=True,
                             text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    jobs = {job["job_name"]: job for job in yaml.safe_load(config)["scrape_configs"]}
    assert set(jobs) == {"legion-api", "legion-gateway", "legion-models"}
    assert all(sd["url"].endswith("/api/v1/prometheus/targets?component=model")
               for sd in jobs["legion-models"]["http_sd_configs"])  # fmt: skip
