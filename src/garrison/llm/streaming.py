"""Output scanning of a stream (SSE deltas) as it arrives, releasing text as soon as it is known clean.

:class:`StreamScanner` is fed the model's text deltas one by one. It keeps the text not yet released
(the *pending* text), rescans it with the output scanners on every delta, and releases everything
but a tail of ``overlap`` characters (the policy's ``output.stream.overlap``, 128 by default), cut at
whitespace. A match that crosses the cut moves the cut to before it, an unfinished private key
(``-----BEGIN`` without its ``-----END``, up to ``max_hold`` characters) and an unfinished ``[``
placeholder hold everything from their start, so a secret, an e-mail address or a URL split over two
deltas is seen whole and redacted before any of it is released. Work per delta is bounded by the
pending text, not by the length of the stream.

System-prompt leakage is scored over the whole stream (the n-grams found so far accumulate). Canary
records and the JSON schema, which need the whole output, are checked again by :meth:`finish`. Once
a scanner blocks, the scanner releases nothing more: the caller should end the stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from garrison.llm.api import OutputReport, output_scanners
from garrison.llm.output_scanners import CanaryLeak, JsonSchema, SystemPromptLeak
from garrison.llm.policy import DEFAULT_POLICY, LlmPolicy
from garrison.llm.scanners import ScanContext, ScanResult, Span, Verdict, placeholder, strongest, verdict_for

if TYPE_CHECKING:
    from garrison.llm.output_scanners import NgramReference, Vault
    from garrison.llm.scanners import OutputScanner

_BACK = 64
_PLACEHOLDER_MAX = 32


@dataclass(slots=True)
class _Tally:
    score: float = 0.0
    verdict: Verdict = Verdict.ALLOW
    spans: dict[tuple[int, int, str], Span] = field(default_factory=dict)
    redacts: bool = False


class StreamScanner:
    """Incremental output scanning of one streamed answer. Make one per response."""

    def __init__(
        self,
        policy: LlmPolicy | None = None,
        *,
        prompt: str | None = None,
        system_prompt: str | None = None,
        vault: Vault | None = None,
    ) -> None:
        self.policy = policy or DEFAULT_POLICY
        self.context = ScanContext(prompt=prompt, system_prompt=system_prompt, vault=vault)
        scanners = output_scanners(self.policy)
        self._window: tuple[OutputScanner, ...] = tuple(
            s for s in scanners if not isinstance(s, JsonSchema | SystemPromptLeak)
        )
        self._at_end: tuple[OutputScanner, ...] = tuple(
            s for s in scanners if isinstance(s, JsonSchema | CanaryLeak)
        )
        leak = next((s for s in scanners if isinstance(s, SystemPromptLeak)), None)
        self._leak = leak
        self._ref: NgramReference | None = leak.reference(self.context) if leak else None
        self._exempt = leak.exempt(self.context, self._ref) if leak and self._ref else frozenset()
        self._grams: set[tuple[str, ...]] = set()
        stream = self.policy.output.stream
        self.overlap = stream.overlap
        self.max_hold = stream.max_hold
        self._pending = ""
        self._offset = 0
        self._raw: list[str] = []
        self._out: list[str] = []
        self._tallies: dict[str, _Tally] = {s.name: _Tally() for s in scanners}
        self._elapsed = 0.0
        self.blocked = False
        """Whether a scanner blocked: nothing more is released."""
        self.finished = False
        """Whether :meth:`finish` was called."""

    # ------------------------------------------------------------ public

    def feed(self, delta: str) -> str:
        """Take the next delta; return the text that can be released now (possibly empty)."""
        if self.blocked or self.finished or not delta:
            return ""
        began = time.perf_counter()
        self._raw.append(delta)
        self._pending += delta
        out = self._step(final=False)
        self._elapsed += time.perf_counter() - began
        return out

    def finish(self) -> str:
        """End of the stream: scan and release the rest, then run the whole-output checks."""
        if self.finished:
            return ""
        self.finished = True
        if self.blocked:
            return ""
        began = time.perf_counter()
        out = self._step(final=True)
        whole = "".join(self._raw)
        for scanner in self._at_end:
            self._tally(scanner.name, scanner.scan(whole, context=self.context), absolute=0, cut=len(whole))
        if any(t.verdict is Verdict.BLOCK for t in self._tallies.values()):
            self.blocked = True
            out = ""
        self._out.append(out)
        self._elapsed += time.perf_counter() - began
        return out

    @property
    def verdict(self) -> Verdict:
        """The strongest verdict so far."""
        return strongest(t.verdict for t in self._tallies.values())

    def results(self) -> tuple[ScanResult, ...]:
        """One result per scanner over everything scanned so far (offsets into the whole stream)."""
        return tuple(
            ScanResult(
                scanner=name,
                score=t.score,
                verdict=t.verdict,
                spans=tuple(sorted(t.spans.values(), key=lambda s: (s.start, s.end))),
            )
            for name, t in self._tallies.items()
        )

    def report(self) -> OutputReport:
        """An :class:`~garrison.llm.api.OutputReport` of the stream so far: ``sanitized_text`` is what
        was released, ``elapsed_ms`` the time spent scanning."""
        return OutputReport(
            verdict=self.verdict, results=self.results(), elapsed_ms=self._elapsed * 1000.0,
            sanitized_text="".join(self._out), text="".join(self._raw),
        )  # fmt: skip

    # ------------------------------------------------------------ internals

    def _step(self, *, final: bool) -> str:
        text = self._pending
        if not text:
            return ""
        results = [(s.name, s.scan(text, context=self.context)) for s in self._window]
        if any(r.verdict is Verdict.BLOCK for _, r in results) or self._leak_blocks(text):
            for name, r in results:
                self._tally(name, r, absolute=self._offset, cut=len(text))
            self.blocked = True
            self._pending = ""
            return ""
        cut = len(text) if final else self._cut(text, [r for _, r in results])
        if cut <= 0:
            return ""
        edits: list[tuple[int, int, str]] = []
        for name, r in results:
            self._tally(name, r, absolute=self._offset, cut=cut)
            if r.redacted_text is not None:
                edits += [
                    (s.start, s.end, placeholder(s.kind.split(":", 1)[0])) for s in r.spans if s.end <= cut
                ]
        out = _apply(text[:cut], edits)
        if self.context.vault is not None:
            out = self.context.vault.restore(out)
        self._pending = text[cut:]
        self._offset += cut
        if not final:
            self._out.append(out)
        return out

    def _leak_blocks(self, text: str) -> bool:
        if self._leak is None or self._ref is None:
            return False
        found = self._ref.matches(text, self._exempt)
        if not found:
            return False
        self._grams |= {g for g, _, _ in found}
        score = self._leak.score_of(len(self._grams), self._ref)
        policy = self._leak.policy
        tally = self._tallies[self._leak.name]
        tally.score = max(tally.score, score)
        verdict = verdict_for(tally.score, flag_at=policy.flag_at, block_at=policy.block_at)
        tally.verdict = strongest((tally.verdict, verdict))
        for _, a, b in found:
            key = (self._offset + a, self._offset + b, "system-prompt")
            tally.spans.setdefault(key, Span(start=key[0], end=key[1], kind="system-prompt", score=score))
        return verdict is Verdict.BLOCK

    def _tally(self, name: str, r: ScanResult, *, absolute: int, cut: int) -> None:
        tally = self._tallies[name]
        tally.score = max(tally.score, r.score)
        tally.verdict = strongest((tally.verdict, r.verdict))
        for s in r.spans:
            if s.end <= cut:
                key = (absolute + s.start, absolute + s.end, s.kind)
                tally.spans.setdefault(key, Span(start=key[0], end=key[1], kind=s.kind, score=s.score))

    def _cut(self, text: str, results: list[ScanResult]) -> int:
        limit = len(text) - self.overlap
        if limit <= 0:
            return 0
        cut = limit
        for i in range(limit - 1, max(limit - _BACK, 0) - 1, -1):
            if text[i].isspace():
                cut = i + 1
                break
        spans = [s for r in results for s in r.spans if s.start < s.end]
        moved = True
        while moved:
            moved = False
            for s in spans:
                if s.start < cut < s.end:
                    cut, moved = s.start, True
        begin = text.rfind("-----BEGIN")
        whole = any(s.start == begin for s in spans)  # the key was recognised, END line and all
        if 0 <= begin < cut and not whole and len(text) - begin <= self.max_hold:
            cut = begin
        bracket = text.rfind("[", max(0, cut - _PLACEHOLDER_MAX), cut)
        if bracket >= 0 and "]" not in text[bracket:cut]:
            cut = bracket
        return max(cut, 0)


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    out: list[str] = []
    pos = 0
    for a, b, new in sorted(edits, key=lambda e: (e[0], -e[1])):
        if a < pos:
            continue
        out += [text[pos:a], new]
        pos = b
    out.append(text[pos:])
    return "".join(out)
