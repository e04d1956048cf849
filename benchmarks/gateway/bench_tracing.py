"""CPU cost of the gateway's OpenTelemetry tracing per request, without exporting.

Runs the tracing middleware around a pipeline whose ten steps do nothing, so what is measured is
the OpenTelemetry SDK's work alone: the request span, one child span per step, the ``traceparent``
for the upstream and the closing attributes. Three settings: sampled with step spans, sampled with
the request span only (``step_spans: false``), and sampled out (``sample_ratio: 0``). Prints CPU
microseconds per request (process time, so other processes on a shared machine count less).

    .venv/bin/python benchmarks/gateway/bench_tracing.py [--requests 3000] [--rounds 3]

Needs the ``otel`` extra. Quoted in docs/gateway.md ("Traces").
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import MutableMapping
from typing import Any

from garrison.gateway.tracing import TRACED_STEPS, Tracing, TracingConfig, traced_subclass
from garrison.gateway.types import Decision, Outcome, Principal, RequestFacts


class _Steps:
    """Stand-in for the gateway's components: every traced step returns at once."""

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing


def _noop(self: _Steps, *args: Any) -> None:
    return None


async def _anoop(self: _Steps, *args: Any) -> None:
    return None


for _name, _ in TRACED_STEPS:
    setattr(_Steps, _name, _noop)
_Steps.admit = _anoop  # type: ignore[attr-defined]
_Steps.settle = _anoop  # type: ignore[attr-defined]


def measure(sample_ratio: float, *, step_spans: bool, requests: int) -> float:
    """CPU microseconds per request."""
    tracing = Tracing(
        TracingConfig(enabled=True, exporter="none", sample_ratio=sample_ratio, step_spans=step_spans)
    )
    steps = traced_subclass(_Steps)(tracing)
    facts = RequestFacts(
        method="POST",
        path="/v1/chat/completions",
        client_ip="127.0.0.1",
        route="chat",
        model="m",
        principal=Principal(id="key_abc", kind="api_key"),
        decisions=[Decision(step=s, outcome=Outcome.ALLOW, ms=0.1) for _, s in TRACED_STEPS],
    )

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        for name, _ in TRACED_STEPS:
            result = getattr(steps, name)()
            if asyncio.iscoroutine(result):
                await result
        tracing.upstream_headers()
        tracing.annotate(facts, status=200, request_id="bench")
        await send({"type": "http.response.start", "status": 200})

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    async def receive() -> MutableMapping[str, Any]:
        return {}

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}

    async def main() -> float:
        t0 = time.process_time()
        for _ in range(requests):
            await tracing.handle(app, scope, receive, send)
        return (time.process_time() - t0) / requests * 1e6

    return asyncio.run(main())


def main() -> None:
    """Print the three settings' cost, ``--rounds`` times."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.rounds):
        full = measure(1.0, step_spans=True, requests=args.requests)
        request_only = measure(1.0, step_spans=False, requests=args.requests)
        sampled_out = measure(0.0, step_spans=True, requests=args.requests)
        print(
            f"sampled, span per step: {full:.0f} µs; request span only: {request_only:.0f} µs; "
            f"sampled out: {sampled_out:.0f} µs"
        )


if __name__ == "__main__":
    main()
