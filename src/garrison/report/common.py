"""What every renderer shares: ordering, grouping, and the words for locations and evidence.

Nothing here knows about an output format. Every function is pure and cheap to import (no rich,
no Jinja2), so the JSON and SARIF renderers do not pay for the console's dependencies.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from garrison.core.assets import Asset, AssetKind
from garrison.core.evidence import ByteRange, Evidence, Exchange, Metric, Observation, OpcodeRef, TextSpan
from garrison.core.findings import Finding, Location
from garrison.core.severity import Severity

#: Severities from the most to the least severe: the order of every summary.
SEVERITIES: tuple[Severity, ...] = tuple(sorted(Severity, reverse=True))

#: Name and home page of the tool, as every format reports it.
TOOL_NAME = "Garrison"
TOOL_URI = "https://github.com/garrison-sec/garrison"

#: Column headings of the evidence table for each evidence kind (HTML report).
EVIDENCE_COLUMNS: dict[str, tuple[str, ...]] = {
    ByteRange.kind: ("Start", "End", "Length", "Description"),
    OpcodeRef.kind: ("Index", "Offset", "Opcode", "Argument"),
    TextSpan.kind: ("Start", "End", "Excerpt (masked)", "Score", "Value hash"),
    Metric.kind: ("Metric", "Value", "Comparison", "Threshold"),
    Observation.kind: ("Name", "Actual", "Expected"),
    Exchange.kind: ("Request id", "Request", "Response"),
}

#: A heading for each evidence kind, for a person.
EVIDENCE_TITLES: dict[str, str] = {
    ByteRange.kind: "Byte ranges",
    OpcodeRef.kind: "Opcodes",
    TextSpan.kind: "Matched text",
    Metric.kind: "Measurements",
    Observation.kind: "Observations",
    Exchange.kind: "Exchanges",
}

# C0 and C1 control characters and the Unicode bidirectional controls: text from a scanned file
# must not move a terminal's cursor, recolour it, or reorder what a reader sees.
_UNPRINTABLE_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_URI_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def printable(text: str) -> str:
    """``text`` with control and bidi-override characters shown as escapes (``\\x1b``, ``\\u202e``).

    Tabs and newlines are kept. Use it on anything that came from a scanned asset before it reaches
    a terminal or a page.
    """

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNPRINTABLE_RE.sub(escape, text)


def iso_utc(moment: datetime) -> str:
    """An ISO 8601 timestamp in UTC ending in ``Z``; a naive datetime is taken to be UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def duration_text(start: datetime, end: datetime) -> str:
    """How long a run took, for a person: ``850 ms``, ``12.3 s``, ``4 min 05 s``."""
    if (start.tzinfo is None) != (end.tzinfo is None):
        start, end = start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)
    seconds = max((end - start).total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def size_text(size: int | None) -> str:
    """A byte count for a person (``1.5 KiB``); empty when unknown."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def short_digest(digest: str | None, *, length: int = 12) -> str:
    """``sha256:0123456789ab`` from a full digest; empty when there is none."""
    if not digest:
        return ""
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:length]}" if value else digest[:length]


def count_text(count: int, singular: str, plural: str | None = None) -> str:
    """``1 error``, ``3 errors``."""
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


def number_text(value: float | None) -> str:
    """A measurement for a person: integers without a point, others to four significant digits."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"


def location_text(location: Location) -> str:
    """Where in the asset, in words: ``member a/data.pkl, offset 26 (0x1a), row 3, column email``."""
    parts: list[str] = []
    if location.member is not None:
        parts.append(f"member {location.member}")
    if location.offset is not None:
        parts.append(f"offset {location.offset} (0x{location.offset:x})")
    if location.row is not None:
        parts.append(f"row {location.row}")
    if location.column is not None:
        parts.append(f"column {location.column}")
    if location.request_id is not None:
        parts.append(f"request {location.request_id}")
    return ", ".join(parts)


def evidence_text(evidence: Evidence) -> str:
    """One line saying what an evidence record shows."""
    if isinstance(evidence, ByteRange):
        where = f"bytes {evidence.start}–{evidence.end}"
        return f"{where}: {evidence.description}" if evidence.description else where
    if isinstance(evidence, OpcodeRef):
        text = f"{evidence.opcode} {evidence.argument}".rstrip()
        return f"{text} (opcode #{evidence.index} at byte {evidence.offset})"
    if isinstance(evidence, TextSpan):
        text = f"“{evidence.excerpt}” at {evidence.start}–{evidence.end}"
        return text if evidence.score is None else f"{text} (score {number_text(evidence.score)})"
    if isinstance(evidence, Metric):
        text = f"{evidence.name} = {number_text(evidence.value)}"
        if evidence.threshold is not None:
            text += f" {evidence.comparison or 'vs'} {number_text(evidence.threshold)}"
        return text
    if isinstance(evidence, Observation):
        text = f"{evidence.name}: {evidence.actual}"
        return f"{text} (expected {evidence.expected})" if evidence.expected else text
    request = evidence.request if len(evidence.request) <= 60 else evidence.request[:59] + "…"
    return f"request {evidence.request_id}: {request}"


def evidence_cells(evidence: Evidence) -> tuple[str, ...]:
    """The cells of one evidence record, in the order of :data:`EVIDENCE_COLUMNS` for its kind."""
    if isinstance(evidence, ByteRange):
        length = str(evidence.end - evidence.start)
        return (str(evidence.start), str(evidence.end), length, evidence.description)
    if isinstance(evidence, OpcodeRef):
        return (str(evidence.index), str(evidence.offset), evidence.opcode, evidence.argument)
    if isinstance(evidence, TextSpan):
        return (
            str(evidence.start),
            str(evidence.end),
            evidence.excerpt,
            number_text(evidence.score),
            short_digest(evidence.value_hash, length=16),
        )
    if isinstance(evidence, Metric):
        return (
            evidence.name,
            number_text(evidence.value),
            evidence.comparison,
            number_text(evidence.threshold),
        )
    if isinstance(evidence, Observation):
        return (evidence.name, evidence.actual, evidence.expected)
    return (evidence.request_id, evidence.request, evidence.response)


def finding_order_key(finding: Finding) -> tuple[int, str, str, str]:
    """Most severe first, then by asset, rule and fingerprint: the order of every flat list."""
    return (-int(finding.severity), finding.asset.locator, finding.rule.id, finding.fingerprint)


@dataclass(frozen=True, slots=True)
class AssetGroup:
    """The findings of one asset, most severe first."""

    asset: Asset
    """The asset."""
    findings: tuple[Finding, ...]
    """Its findings, most severe first, then by rule id."""

    @property
    def worst(self) -> Severity:
        """The highest severity among the findings."""
        return max(f.severity for f in self.findings)


def group_by_asset(findings: Iterable[Finding]) -> list[AssetGroup]:
    """Findings grouped by asset; the asset with the most severe finding first, then by locator."""
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(finding.asset.key, []).append(finding)
    groups = [
        AssetGroup(
            asset=items[0].asset,
            findings=tuple(sorted(items, key=lambda f: (-int(f.severity), f.rule.id, f.fingerprint))),
        )
        for items in grouped.values()
    ]
    return sorted(groups, key=lambda g: (-int(g.worst), g.asset.locator, g.asset.kind.value))


def asset_uri(asset: Asset) -> tuple[str, bool]:
    """A URI for the asset and whether it is relative to the scan root.

    Endpoints and anything that already has a scheme keep their URI; absolute paths become
    ``file://`` URIs; everything else is a percent-encoded path relative to the scan root.
    """
    locator = asset.locator
    if asset.kind is AssetKind.ENDPOINT or _URI_SCHEME_RE.match(locator):
        return locator, False
    # what core.text wrote out goes back to bytes (a file name's byte 0xff is %FF in a URI); any other
    # backslash separates a Windows path
    parts = _WRITTEN_OUT.split(locator)
    parts[::2] = [part.replace("\\", "/") for part in parts[::2]]
    path = "".join(parts)
    if re.match(r"^[A-Za-z]:/", path):  # a Windows drive path
        return "file:///" + _quote(parts, "/:"), False
    if path.startswith("/"):
        return "file://" + _quote(parts, "/"), False
    while parts[0].startswith("./"):
        parts[0] = parts[0][2:]
    return _quote(parts, "/"), True


#: The escapes :func:`garrison.core.text.visible` writes: a non-UTF-8 byte or NUL, a lone surrogate.
_WRITTEN_OUT = re.compile(r"(\\x(?:[89a-f][0-9a-f]|00)|\\ud[89a-f][0-9a-f]{2})")


def _quote(parts: list[str], safe: str) -> str:
    """Percent-encode text and escapes alternately (``split`` with a group): ``\\xff`` becomes ``%FF``."""
    return "".join(
        quote(part, safe=safe)
        if i % 2 == 0
        else (f"%{part[2:].upper()}" if part[1] == "x" else quote(part, safe=""))
        for i, part in enumerate(parts)
    )


def is_web_url(url: str | None) -> bool:
    """True for an ``http`` or ``https`` URL: the only links a report may contain."""
    if not url:
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
