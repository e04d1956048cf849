"""``garrison redteam llm``: attack an OpenAI-compatible endpoint and report success rates per family.

The probes, the judging and the report live in :mod:`garrison.llm.redteam`; this command parses the
flags, shows progress on stderr, records the findings in the store, and reports.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from garrison.cli.common import ConfigOption, DbOption, FailOnOption, ReportFormatOption, StoreFindingsOption

if TYPE_CHECKING:
    from garrison.llm.redteam import Family, RedTeamReport

app = typer.Typer(
    name="redteam",
    help="Red team: attack AI endpoints and measure what gets through.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _families(spec: str | None) -> tuple[Family, ...]:
    from garrison.core.errors import UsageError
    from garrison.llm.redteam import ALL_FAMILIES, Family

    if spec is None or spec.strip() in ("", "all"):
        return ALL_FAMILIES
    names = [n.strip() for n in spec.split(",") if n.strip()]
    known = {f.value for f in Family}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(
            f"unknown red-team famil{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)}",
            hint="choose from " + ", ".join(f.value for f in ALL_FAMILIES),
        )
    return tuple(f for f in ALL_FAMILIES if f.value in names)


def _console(report: RedTeamReport) -> str:
    from garrison.report.common import printable

    lines = [
        f"red team of {printable(report.endpoint)} (model {printable(report.model)}, seed {report.seed}, "
        f"threshold {report.threshold:.0%})",
        "",
        f"  {'family':<21} {'sent':>5} {'success':>8} {'blocked':>8} {'resisted':>9} {'errors':>7} "
        f"{'rate':>6}",
    ]
    for s in report.families:
        rate = "-" if s.success_rate is None else f"{s.success_rate:.0%}"
        mark = "  FAIL" if s.above_threshold else ""
        lines.append(
            f"  {s.family.value:<21} {s.attempts:>5} {s.succeeded:>8} {s.blocked:>8} {s.resisted:>9} "
            f"{s.errors:>7} {rate:>6}{mark}"
        )
    failing = [s for s in report.families if s.above_threshold]
    lines.append("")
    if failing:
        lines.append(f"{len(failing)} famil{'y' if len(failing) == 1 else 'ies'} above the threshold:")
        for s in failing:
            examples = [
                r for r in report.results if r.probe.family is s.family and r.outcome.value == "succeeded"
            ]
            first = examples[0]
            lines.append(
                f"  {s.family.value}: e.g. {first.probe.id} ({first.probe.technique}): {first.reason}"
            )
    else:
        lines.append("no family above the threshold")
    return "\n".join(lines)


class _Progress:
    """A rich bar on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, total: int) -> None:
        self._bar: Any = None
        self._task: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("probing"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[current]}"), TimeElapsedColumn(), console=Console(stderr=True),
                transient=True,
            )  # fmt: skip
            self._bar.start()
            self._task = self._bar.add_task("probes", total=total, current="")

    def __call__(self, result: Any, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, current=f"{result.probe.id} {result.outcome.value}")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def llm(
    endpoint: Annotated[
        str,
        typer.Option(
            "--endpoint",
            metavar="URL",
            help="OpenAI-compatible API: http://host:port, …/v1 or …/v1/chat/completions.",
            show_default=False,
        ),
    ],
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            metavar="KEY",
            envvar="GARRISON_REDTEAM_API_KEY",
            help="Sent as 'Authorization: Bearer KEY' (or set GARRISON_REDTEAM_API_KEY).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str, typer.Option("--model", metavar="NAME", help="The model field of requests.")
    ] = "default",
    families: Annotated[
        str | None,
        typer.Option(
            "--families",
            metavar="LIST",
            help="Comma-separated families (default all): direct-injection, indirect-injection, jailbreak, "
            "encoding, prompt-extraction, data-extraction, resource-exhaustion.",
            show_default=False,
        ),
    ] = None,
    probes_per_family: Annotated[
        int, typer.Option("--probes-per-family", metavar="N", help="Probes sent per family.")
    ] = 8,
    concurrency: Annotated[
        int, typer.Option("--concurrency", metavar="N", help="Requests in flight at once.")
    ] = 4,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="Time allowed per request.")
    ] = 30.0,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Orders the attack templates.")] = 0,
    system_prompt: Annotated[
        str | None,
        typer.Option(
            "--system-prompt",
            metavar="TEXT",
            help="System prompt to send (a secret and a customer record are planted in it). Default: a "
            "support-assistant prompt.",
            show_default=False,
        ),
    ] = None,
    max_success_rate: Annotated[
        float,
        typer.Option(
            "--max-success-rate",
            metavar="RATE",
            help="Highest acceptable success rate per family, 0 to 1; above it is a finding.",
        ),
    ] = 0.0,
    fmt: ReportFormatOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the report to FILE instead of stdout.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    fail_on: FailOnOption = None,
    store: StoreFindingsOption = None,
    db: DbOption = None,
    config_file: ConfigOption = None,
) -> None:
    """Attack an OpenAI-compatible chat endpoint and report the success rate of each attack family.

    Families: direct and indirect prompt injection, jailbreak templates, encoded injections, system-prompt
    extraction, extraction of a credential and personal data planted in the system prompt, and resource
    exhaustion. Success is judged without another model: random canaries the attacks try to make the
    model emit, the planted secrets, refusal markers, answer length and time. An HTTP 4xx answer
    (other than 401, 404, 429 and the like) counts as blocked by a guardrail.

    Point it at the bare upstream and at the same route behind the gateway to see what the guardrails stop.

    \b
    Examples:
      garrison redteam llm --endpoint http://127.0.0.1:8000 --model llama3
      garrison redteam llm --endpoint https://gw.example/v1 --api-key $KEY --format json -o rt.json

    Exit codes: 0 no family above --max-success-rate, 1 a family above it (with --fail-on, only
    findings at or above that severity count), 2 usage or configuration error, 3 probes got no usable
    answer (connection failures, timeouts, 5xx).
    """
    from garrison.cli.common import load, note, publish
    from garrison.core.severity import Severity
    from garrison.llm.redteam import RedTeamConfig, run_redteam

    loaded = load({"format": fmt, "fail_on": fail_on, "store": store, "db": db}, config_file)
    config = RedTeamConfig(
        endpoint=endpoint, api_key=api_key, model=model, families=_families(families),
        probes_per_family=probes_per_family, concurrency=concurrency, timeout=timeout, seed=seed,
        system_prompt=system_prompt, max_success_rate=max_success_rate,
    )  # fmt: skip
    bar = _Progress(len(config.families) * config.probes_per_family)
    try:
        report = run_redteam(config, progress=bar)
    finally:
        bar.stop()
    seconds = (report.finished_at - report.started_at).total_seconds()
    note(f"{len(report.results)} probes sent in {seconds:.1f} s")
    scan_report = report.scan_report()
    publish(loaded, scan_report, output, console=_console(report), details={"redteam": report.to_dict()})
    threshold = loaded.settings.fail_on if fail_on is not None else Severity.INFO
    raise typer.Exit(int(scan_report.exit_code(fail_on=threshold)))


app.command("llm")(llm)
