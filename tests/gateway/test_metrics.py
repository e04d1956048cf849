"""Prometheus metrics: counted per process, summed across worker processes, valid exposition."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from garrison.gateway.metrics import Metrics, clear_multiprocess_dir
from garrison.gateway.types import Decision, Outcome, RequestFacts

DECISIONS = (
    Decision(step="auth", outcome=Outcome.ALLOW),
    Decision(step="input.injection", outcome=Outcome.DENY, reason="score 0.93"),
)


def _samples(metrics: Metrics) -> dict[str, list[Sample]]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=")
    by_family: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(body.decode()):
        by_family[family.name] = list(family.samples)
    return by_family


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def _worker(folder: str, count: int) -> None:
    metrics = Metrics(folder)
    for _ in range(count):
        metrics.observe(route="chat", status=200, duration_s=0.2, overhead_s=0.0004, decisions=DECISIONS)
    metrics.upstream_error("chat", "timeout")
    metrics.set_budget_remaining("tokens.team-a", 1234)
    metrics.close()


@pytest.mark.parametrize("start", ["spawn", "fork"])
def test_totals_add_up_across_worker_processes(tmp_path: Path, start: str) -> None:
    clear_multiprocess_dir(tmp_path)
    mine = Metrics(tmp_path)
    mine.observe(route="chat", status=200, duration_s=0.02, overhead_s=0.002, decisions=DECISIONS)
    mine.observe(route="chat", status=429, duration_s=0.001, overhead_s=0.001)
    context = multiprocessing.get_context(start)
    workers = [context.Process(target=_worker, args=(str(tmp_path), n)) for n in (5, 7)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    # A forked worker starts from zero, so what this process counted before the fork is counted once.
    families = _samples(mine)
    requests = families["garrison_gateway_requests"]
    assert _value(requests, "garrison_gateway_requests_total", route="chat", status="200") == 13
    assert _value(requests, "garrison_gateway_requests_total", route="chat", status="429") == 1
    decisions = families["garrison_gateway_decisions"]
    assert _value(decisions, "garrison_gateway_decisions_total", step="input.injection", outcome="deny") == 13
    duration = families["garrison_gateway_request_duration_seconds"]
    name = "garrison_gateway_request_duration_seconds"
    assert _value(duration, f"{name}_count", route="chat") == 14
    assert _value(duration, f"{name}_sum", route="chat") == pytest.approx(12 * 0.2 + 0.021)
    assert _value(duration, f"{name}_bucket", route="chat", le="0.025") == 2
    assert _value(duration, f"{name}_bucket", route="chat", le="0.25") == 14
    upstream = families["garrison_gateway_upstream_errors"]
    assert _value(upstream, "garrison_gateway_upstream_errors_total", route="chat", kind="timeout") == 2
    budget = families["garrison_gateway_budget_remaining"]
    assert _value(budget, "garrison_gateway_budget_remaining", limit="tokens.team-a") == 1234
    assert len(list(tmp_path.glob("metrics-*.json"))) == 2  # this process has not written its own yet
    mine.close()


def test_histogram_buckets_are_cumulative_and_bounds_inclusive() -> None:
    metrics = Metrics()
    for seconds in (0.0001, 0.00025, 0.0003, 0.01, 3.0):
        metrics.observe(route="r", status=200, duration_s=seconds, overhead_s=seconds)
    samples = _samples(metrics)["garrison_gateway_overhead_seconds"]
    buckets = [(s.labels["le"], s.value) for s in samples if s.name.endswith("_bucket")]
    assert buckets[0] == ("0.0001", 1.0)  # le is "less than or equal"
    assert buckets[1] == ("0.00025", 2.0)
    assert buckets[-1] == ("+Inf", 5.0)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert _value(samples, "garrison_gateway_overhead_seconds_count") == 5


def test_observe_request_reads_route_and_decisions_from_the_facts() -> None:
    metrics = Metrics()
    facts = RequestFacts(method="GET", path="/nope", client_ip="::1", decisions=list(DECISIONS[:1]))
    metrics.observe_request(facts, status=404, duration_s=0.001, overhead_s=0.001)
    families = _samples(metrics)
    requests = families["garrison_gateway_requests"]
    assert _value(requests, "garrison_gateway_requests_total", route="unmatched", status="404") == 1
    decisions = families["garrison_gateway_decisions"]
    assert _value(decisions, "garrison_gateway_decisions_total", step="auth", outcome="allow") == 1


def test_the_newest_budget_value_wins_across_processes(tmp_path: Path) -> None:
    first, second = Metrics(tmp_path), Metrics(tmp_path)
    first.set_budget_remaining("requests.day", 10)
    first.flush()
    second.set_budget_remaining("requests.day", 7)
    second.flush()
    budget = _samples(first)["garrison_gateway_budget_remaining"]
    assert _value(budget, "garrison_gateway_budget_remaining", limit="requests.day") == 7


def test_label_values_are_escaped(tmp_path: Path) -> None:
    metrics = Metrics(tmp_path)
    metrics.upstream_error('we"ird\\route\n', "connect")
    metrics.flush()
    upstream = _samples(Metrics(tmp_path))["garrison_gateway_upstream_errors"]
    assert _value(upstream, "garrison_gateway_upstream_errors_total", route='we"ird\\route\n') == 1


def test_clear_removes_old_snapshots(tmp_path: Path) -> None:
    old = Metrics(tmp_path)
    old.observe(route="r", status=200, duration_s=0.1, overhead_s=0.001)
    old.flush()
    clear_multiprocess_dir(tmp_path)
    assert not any(p.name.startswith("metrics-") for p in tmp_path.iterdir())
    assert _samples(Metrics(tmp_path))["garrison_gateway_requests"] == []


def test_background_thread_writes_snapshots(tmp_path: Path) -> None:
    metrics = Metrics(tmp_path, flush_interval_s=0.01)
    metrics.start()
    metrics.observe(route="r", status=200, duration_s=0.1, overhead_s=0.001)
    reader = Metrics(tmp_path)
    for _ in range(500):
        requests = _samples(reader)["garrison_gateway_requests"]
        if requests:
            break
        time.sleep(0.01)
    assert _value(requests, "garrison_gateway_requests_total", route="r", status="200") == 1
    metrics.close()
