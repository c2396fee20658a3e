"""The Prometheus alert rules, docker/prometheus/alerts.yml, and the series behind them.

* ``promtool check rules`` accepts the file, and ``promtool check config`` the
  ``prometheus.yml`` that docs/deployment.md (*Alerts*) shows to load it;
* ``promtool test rules docker/prometheus/alerts_test.yml`` passes, and those unit
  tests make every rule fire in one case and stay quiet in another;
* every metric name in the rules' expressions is one ``/metrics`` exports: the app's
  metric definitions rendered in-process by :func:`jobupdates.monitoring.metrics.render`,
  as the view renders them, with a bridge report;
* each rule has a ``for:`` duration, a severity and annotations that name the labels
  it fires with (the instance, the bridge);
* the series added for the rules are set where the events happen: the bridge's role
  and lag from its report, the registry's heartbeat on each write to Redis, a slow
  client's drop.

promtool comes from Debian's ``prometheus`` package (the Makefile's
``SYSTEM_PACKAGES``, installed by ``make system-deps`` as root). Without it the
promtool tests are skipped with a loud reason, except under CI (``CI`` set), where
they fail: CI must run them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import yaml
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from botrix_site.redis_server import RedisServer
from jobupdates.access.middleware import ORIGIN_OK
from jobupdates.consumers import JobUpdatesConsumer
from jobupdates.monitoring import metrics
from jobupdates.monitoring.records import decode_instance, instance_key
from jobupdates.monitoring.registry import Registry
from jobupdates.protocol.reports import BridgeReport, BridgeState

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "docker" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "docker" / "prometheus" / "alerts_test.yml"
DEPLOYMENT = ROOT / "docs" / "deployment.md"
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
SEVERITIES = {"warning", "critical"}
TARGET_LABELS = {"instance", "job", "exported_instance"}
"""Labels Prometheus puts on every scraped series (``exported_instance``: the
series' own ``instance`` label, renamed because the target's wins)."""
NO_PROMTOOL = (
    "!!! promtool is NOT INSTALLED: the Prometheus alert rules (docker/prometheus/) are {}. "
    "Install Debian's prometheus package (`make system-deps`, or `apt-get install prometheus`) !!!"
)
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}
"""The sample names of a family of each type (for families with no child yet)."""

# PromQL, just enough to find what an expression reads.
STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`""")
MATCHERS = re.compile(r"\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
RANGE = re.compile(r"\[[^\]]*\]")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")
KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """Return the metric names and the label names an expression reads.

    Metric names are the identifiers that are not functions, aggregations or
    keywords; label names those of ``by``/``on``/... lists and of ``{...}`` matchers.
    """
    text = STRING.sub('""', expr)
    labels: set[str] = set()
    for grouping in GROUPING.findall(text):
        labels |= {name.strip() for name in grouping.split(",") if name.strip()}
    text = GROUPING.sub(" ", text)
    for matchers in MATCHERS.findall(text):
        labels |= set(MATCHER_LABEL.findall(matchers))
    text = RANGE.sub(" ", MATCHERS.sub(" ", text))
    found = set(IDENTIFIER.findall(text))
    return {name for name in found if name.lower() not in KEYWORDS}, labels


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"expected a YAML mapping in {path}"
    return document


def rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml."""
    found = [rule for group in load(ALERTS)["groups"] for rule in group["rules"]]
    assert found, f"expected alerting rules in {ALERTS}"
    assert all("alert" in rule for rule in found), "expected alerting rules only"
    return found


@pytest.fixture
def one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """``/metrics`` rendered from this process's own series, as without a multiproc dir."""
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)


def exported() -> tuple[set[str], set[str]]:
    """Return the metric names and the label names of what ``/metrics`` serves.

    Rendered in-process as the view renders them (one process, no
    ``PROMETHEUS_MULTIPROC_DIR``), with a bridge report that has a rejection and
    a forwarded status so the bridge's labelled series have children.
    """
    report = BridgeReport(
        "host:1:aaaaaa",
        BridgeState.SUBSCRIBED,
        1.0,
        received=2,
        forwarded=1,
        forwarded_by_status={"completed": 1},
        rejected={"unknown_status": 1},
        lag_seconds=0.5,
    )
    names: set[str] = set()
    labels: set[str] = set()
    for family in text_string_to_metric_families(metrics.render([report]).decode()):
        names |= {family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type]}
        for sample in family.samples:
            names.add(sample.name)
            labels |= set(sample.labels)
    return names, labels


def truthy(value: str | None) -> bool:
    return (value or "").lower() in {"1", "true", "yes"}


@pytest.fixture
def promtool() -> str:
    """Debian's promtool, else a loud skip (a failure under CI)."""
    found = shutil.which("promtool", path=f"{os.environ.get('PATH', '')}:/usr/bin:/usr/sbin")
    if found is None:
        if truthy(os.environ.get("CI")):
            pytest.fail(NO_PROMTOOL.format("untested, and CI must test them"), pytrace=False)
        reason = NO_PROMTOOL.format("SKIPPED, so they are untested")
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    return found


def run_promtool(promtool: str, *args: str) -> str:
    result = subprocess.run(
        [promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"`promtool {' '.join(args)}` failed:\n{output}"
    return output


# The rules


def test_promtool_accepts_the_rules(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", str(ALERTS.relative_to(ROOT)))
    assert f"SUCCESS: {len(rules())} rules found" in output, output


def test_the_rules_fire_and_stay_quiet_as_their_unit_tests_expect(promtool: str) -> None:
    output = run_promtool(promtool, "test", "rules", str(ALERT_TESTS.relative_to(ROOT)))
    assert "SUCCESS" in output, output


def test_the_documented_prometheus_config_loads_the_rules(promtool: str, tmp_path: Path) -> None:
    section = DEPLOYMENT.read_text().split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    [config] = YAML_BLOCK.findall(section)
    assert "/etc/prometheus/botrix-alerts.yml" in config
    (tmp_path / "botrix-alerts.yml").write_text(ALERTS.read_text())
    (tmp_path / "botrix-metrics-token").write_text("a-token\n")
    written = tmp_path / "prometheus.yml"
    written.write_text(config.replace("/etc/prometheus/", f"{tmp_path}/"))
    output = run_promtool(promtool, "check", "config", str(written))
    assert "SUCCESS: 1 rule files found" in output, output
    assert f"SUCCESS: {len(rules())} rules found" in output, output


def test_every_rule_is_unit_tested_firing_and_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    tests = load(ALERT_TESTS)
    assert tests["rule_files"] == [ALERTS.name]
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert names - fires == set(), f"expected a unit test where these fire: {names - fires}"
    assert names - quiet == set(), f"expected a unit test where these are quiet: {names - quiet}"
    assert (fires | quiet) - names == set(), f"tests of unknown rules: {(fires | quiet) - names}"


def test_every_metric_the_rules_read_is_exported(one_process: None) -> None:
    names, labels = exported()
    for rule in rules():
        used, grouped = promql_names(rule["expr"])
        assert used, f"{rule['alert']}: expected a metric in {rule['expr']!r}"
        unknown = used - names
        assert not unknown, f"{rule['alert']} reads metrics /metrics does not export: {unknown}"
        foreign = {name for name in used if not name.startswith("jobupdates_")}
        assert not foreign, f"{rule['alert']} reads metrics that are not the app's: {foreign}"
        unknown = grouped - labels - TARGET_LABELS
        assert not unknown, f"{rule['alert']} uses labels no exported series has: {unknown}"


def test_the_promql_reader_finds_metrics_and_labels_but_not_functions() -> None:
    expr = """
        (max(a_metric * b:recorded) or on() vector(0)) == 0 and on() count(c_total) > 0
        or sum by (bridge, reason) (rate(d_total{reason=~"x|y", q!="{z}"}[10m] offset 5m)) * 60
        > 1e3 unless ignoring(instance) group_left(job) time() - timestamp(e_seconds) > bool 1
    """
    assert promql_names(expr) == (
        {"a_metric", "b:recorded", "c_total", "d_total", "e_seconds"},
        {"bridge", "reason", "q", "instance", "job"},
    )


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_every_rule_waits_has_a_severity_and_explains_itself(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), "expected a `for:` duration"
    assert rule.get("labels", {}).get("severity") in SEVERITIES
    annotations = rule.get("annotations", {})
    assert {"summary", "description"} <= set(annotations), "expected a summary and description"
    # What the alert fires with (per its unit tests) is named in both annotations.
    carried: set[str] = set()
    for case in load(ALERT_TESTS)["tests"]:
        for check in case["alert_rule_test"]:
            if check["alertname"] == rule["alert"]:
                for alert in check["exp_alerts"]:
                    carried |= set(alert.get("exp_labels", {})) - {"severity"}
    for label in carried:
        for key in ("summary", "description"):
            assert f"$labels.{label}" in annotations[key], f"expected {label} in its {key}"


# The series behind the rules


def test_the_bridge_series_say_which_bridge_is_active_and_its_lag(one_process: None) -> None:
    active = BridgeReport("a", BridgeState.SUBSCRIBED, 1.0, role="active", lag_seconds=12.5)
    standby = BridgeReport("b", BridgeState.SUBSCRIBED, 1.0, role="standby")
    text = metrics.render([active, standby]).decode()
    assert 'jobupdates_bridge_active{bridge="a"} 1.0' in text
    assert 'jobupdates_bridge_active{bridge="b"} 0.0' in text
    assert 'jobupdates_bridge_lag_seconds{bridge="a"} 12.5' in text
    assert 'jobupdates_bridge_lag_seconds{bridge="b"} 0.0' in text


def heartbeat(registry: Registry) -> float | None:
    return REGISTRY.get_sample_value(
        "jobupdates_registry_heartbeat_timestamp_seconds", {"instance": registry.instance}
    )


async def test_the_heartbeat_gauge_follows_each_heartbeat_written(
    redis_server: RedisServer,
) -> None:
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    registry = Registry(client, interval=60)
    assert heartbeat(registry) == registry.info.started_at
    scope = {"client": ("10.0.0.5", 5555), "headers": [], "user": User(pk=7, username="ann")}
    await registry.register(scope, "c" * 32, "chan-1", ["jobupdates.all"], lambda: 0)

    reader = redis.Redis.from_url(redis_server.url, socket_timeout=5)

    def stored() -> float:
        info = decode_instance(reader.get(instance_key(registry.instance)))
        assert info is not None, "expected the instance's heartbeat in Redis"
        return info.reported_at

    first = stored()
    assert heartbeat(registry) == first
    await registry.refresh()
    assert stored() > first
    assert heartbeat(registry) == stored()
    reader.close()
    await client.aclose()


async def test_the_heartbeat_gauge_goes_stale_when_redis_refuses() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_timeout=1)  # discard port
    registry = Registry(client, interval=60)
    started = registry.info.started_at
    scope = {"client": ("10.0.0.5", 5555), "headers": [], "user": User(pk=7, username="ann")}
    await registry.register(scope, "d" * 32, "chan-2", ["jobupdates.all"], lambda: 0)
    await registry.refresh()
    assert registry.info.reported_at > started, "expected heartbeats attempted"
    assert heartbeat(registry) == started
    await client.aclose()


async def test_a_slow_client_drop_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    consumers: list[JobUpdatesConsumer] = []
    connect = JobUpdatesConsumer.connect

    async def recording(self: JobUpdatesConsumer) -> None:
        consumers.append(self)
        await connect(self)

    monkeypatch.setattr(JobUpdatesConsumer, "connect", recording)
    comm = WebsocketCommunicator(JobUpdatesConsumer.as_asgi(), "/ws")
    comm.scope.update({"user": User(pk=1, username="s", is_staff=True), ORIGIN_OK: True})
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from())["type"] == "welcome"
    before = REGISTRY.get_sample_value("jobupdates_slow_client_drops_total") or 0.0
    [consumer] = consumers
    consumer.on_overflow("1048577 bytes unread, over the limit of 1048576")
    error = await comm.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "slow_client")
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4408}
    assert REGISTRY.get_sample_value("jobupdates_slow_client_drops_total") == before + 1
    await comm.disconnect()
