"""Input scanners: what a prompt, or a document passed to the model, is checked for before the model sees it.

Each class is built once from its part of the policy (:mod:`garrison.llm.policy`) and is safe to share
between threads: it holds compiled patterns and the loaded model, no per-text state. ``scan`` answers
with a :class:`~garrison.llm.scanners.ScanResult`.

- :class:`InjectionScanner`: the trained detector (:mod:`garrison.llm.injection`), plus explicit cues;
  in document mode every sentence is scored on its own and phrases that address the model from inside
  a document (``if you are an AI assistant``, ``do not tell the user``, chat-template tokens, hidden
  HTML) count as well.
- :class:`InvisibleText`: Unicode tag characters, zero-width characters inside words, bidirectional
  overrides and isolates, variation-selector runs, words that mix Latin with Cyrillic or Greek
  look-alikes.
- :class:`EncodedPayload`: base64, hex, URL-encoded, ROT13 and tag-character runs decoded (within
  strict bounds) and the decoded text rescanned by the injection detector and the banned lists.
  Leetspeak needs no decoding step: :func:`~garrison.llm.normalize.normalize` folds it for the
  detector and the banned lists.
- :class:`SecretsScanner`, :class:`PIIScanner`: :mod:`garrison.recognizers`.
- :class:`BannedSubstrings`, :class:`BannedTopics`, :class:`RegexScanner`: lists from the policy.
- :class:`TokenLimit`: size and a token estimate (see :func:`estimate_tokens`).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import dataclasses
import re
import threading
import urllib.parse
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from garrison.llm.normalize import normalize
from garrison.llm.scanners import (
    EMPTY_CONTEXT,
    InputScanner,
    ScanContext,
    ScanResult,
    Span,
    Verdict,
    apply_redactions,
    result,
)
from garrison.recognizers.pii import DEFAULT_REGIONS, Scanner
from garrison.recognizers.pii_types import Entity, Match

if TYPE_CHECKING:
    from garrison.llm.injection import InjectionDetector
    from garrison.llm.policy import (
        BannedSubstringsPolicy,
        BannedTopicsPolicy,
        EncodedPolicy,
        InjectionPolicy,
        InvisiblePolicy,
        LimitsPolicy,
        PIIPolicy,
        RegexPolicy,
        SecretsPolicy,
    )

_MAX_SPANS = 32
_DETECTORS: dict[bool | None, InjectionDetector] = {}
_DETECTOR_LOCK = threading.Lock()


def shared_detector(second_stage: bool | None = None) -> InjectionDetector:
    """The shipped injection model, loaded once per process (per ``second_stage`` setting: ``None``
    follows the shipped default, True needs the ``llm-embed`` extra)."""
    with _DETECTOR_LOCK:
        detector = _DETECTORS.get(second_stage)
        if detector is None:
            from garrison.llm.injection import InjectionDetector

            detector = _DETECTORS[second_stage] = InjectionDetector.load(second_stage=second_stage)
            # the default resolves to on or off: an explicit request for the same gets this one
            _DETECTORS.setdefault(detector.second_stage is not None, detector)
        return detector


def _block_at(value: float | str | None, detector: InjectionDetector) -> float | None:
    if value == "model":
        return detector.decision_threshold
    return None if value is None else float(value)


# ---------------------------------------------------------------- injection

_I = re.IGNORECASE
#: Cues that mark an instruction override anywhere (prompt or document), with their scores.
_STRONG_CUES: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(
        r"\b(?:ignore|disregard|forget|override|bypass|skip)\b[^.\n]{0,40}?"
        r"\b(?:previous|prior|above|earlier|preceding|all|any|your|the|these|those)\b[^.\n]{0,30}?"
        r"\b(?:instructions?|prompts?|rules|directions|guidelines|directives|guardrails)\b", _I), 0.95),
    (re.compile(r"<\|(?:im_start|im_end|system|endoftext|start_header_id)\|>|\[/?INST\]|<<SYS>>", _I), 0.95),
    (re.compile(r"\b(?:new|updated|real|actual|true)\s+(?:system\s+)?instructions?\s*:", _I), 0.9),
)  # fmt: skip
#: Cues of an instruction addressed to the model from inside a document (document mode only).
_DOCUMENT_CUES: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(r"\b(?:if|when)\s+you\s+are\s+(?:an?\s+)?(?:ai|llm|large language model|language model|"
                r"assistant|ai assistant|chatbot|bot|gpt|copilot)\b", _I), 0.95),
    (re.compile(r"\b(?:note|message|instructions?|directive)\s+(?:to|for)\s+(?:the\s+|any\s+)?"
                r"(?:ai|llm|assistant|model|chatbot|bot|agent)s?\b", _I), 0.95),
    (re.compile(r"\b(?:ai|llm|assistant|chatbot|language model|agent)\s*[,:]\s*(?:please\s+)?"
                r"(?:ignore|do not|don't|instead|you must|now|stop|forward|send|reply|respond|include|"
                r"tell|say|output|print|write)\b", _I), 0.95),
    (re.compile(r"\bdo\s+not\s+(?:tell|inform|mention\s+(?:this\s+)?to|reveal\s+(?:this\s+)?to|show)\b"
                r"[^.\n]{0,30}?\b(?:the\s+)?user\b", _I), 0.95),
    (re.compile(r"\b(?:instead|from now on)\b[^.\n]{0,20}?\b(?:you\s+(?:must|should|will)|respond|reply|"
                r"say|write|output)\b", _I), 0.7),
    (re.compile(r"\b(?:send|forward|post|upload|exfiltrate|e-?mail)\b[^.\n]{0,60}?\b(?:to|at)\s+"
                r"(?:https?://|[\w.+-]+@[\w-]+\.)", _I), 0.7),
    (re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?:px|pt|em)?\s*[;\"']|"
                r"color\s*:\s*(?:#fff(?:fff)?|white)\s*[;\"']", _I), 0.6),
)  # fmt: skip


_LEET_HINT = re.compile(r"[A-Za-z][013457@$+]|[013457@$+][A-Za-z]")


def _cue_spans(text: str, cues: Sequence[tuple[re.Pattern[str], float]], kind: str) -> list[Span]:
    spans: list[Span] = []
    for pattern, score in cues:
        for m in pattern.finditer(text):
            spans.append(Span(start=m.start(), end=m.end(), kind=kind, score=score))
            if len(spans) >= _MAX_SPANS:
                return spans
    return spans


class InjectionScanner:
    """Prompt injection and jailbreak: the trained detector, and in document mode sentence scoring and cues.

    The score is the highest of: the detector's score over the text's windows (and, in document mode,
    over every sentence, however short the text), and the scores of the explicit cues that match. An
    obfuscated cue (zero-width characters, look-alike letters, leetspeak) is found in the normalised
    text and reported over the whole text.
    """

    name = "injection"

    def __init__(self, policy: InjectionPolicy, detector: InjectionDetector | None = None) -> None:
        self.policy = policy
        self.detector = detector or shared_detector(policy.second_stage)
        self.flag_at = policy.flag_at
        self.block_at = _block_at(policy.block_at, self.detector)
        self.document_block_at = _block_at(policy.document_block_at, self.detector)

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Score ``text``; ``context.document`` turns on document mode."""
        from garrison.llm.injection import split_sentences

        det = self.detector
        pieces = det.window_scores(text)
        if context.document and text.strip():
            config = dataclasses.replace(det.windows, size=0)
            seen = {(a, b) for a, b, _ in pieces}
            units = [u for u in split_sentences(text, config) if u not in seen]
            if units:
                scores = det.score_normalized([normalize(text[a:b]) for a, b in units])
                pieces += [(a, b, s) for (a, b), s in zip(units, scores, strict=True)]
        pieces = det.refine(text, pieces)
        spans = [
            Span(start=a, end=b, kind="injection", score=round(s, 6))
            for a, b, s in pieces
            if s >= self.flag_at
        ]
        cues = list(_STRONG_CUES)
        if context.document and self.policy.document_cues:
            cues += _DOCUMENT_CUES
        found = _cue_spans(text, cues, "document-cue" if context.document else "injection-cue")
        if not found and (not text.isascii() or _LEET_HINT.search(text)):
            folded = normalize(text)
            if folded != text:
                hit = max((s for p, s in cues if p.search(folded)), default=0.0)
                if hit:
                    found = [Span(start=0, end=len(text), kind="obfuscated-cue", score=hit)]
        spans += found
        spans = sorted(spans, key=lambda s: -s.score)[:_MAX_SPANS]
        top = max((s for _, _, s in pieces), default=0.0)
        top = max([top, *(s.score for s in found)])
        block_at = self.document_block_at if context.document else self.block_at
        return result(self.name, spans, flag_at=self.flag_at, block_at=block_at, score=top)


# ---------------------------------------------------------------- invisible text

_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_VARIATION_RUN = re.compile("[\U000e0100-\U000e01ef]+|[\ufe00-\ufe0f]{3,}")
_BIDI_OVERRIDE = re.compile("[\u202d\u202e]+")
_BIDI_ISOLATE = re.compile("[\u202a\u202b\u202c\u2066-\u2069]+")
#: Lone surrogates: a ``str`` can hold them (``json.loads`` turns ``"\\ud800"`` into one), UTF-8 cannot.
_SURROGATES = re.compile("[\ud800-\udfff]+")
_ZERO_WIDTH = re.compile(
    "[\u200b\u200c\u200d\u2060\u2061-\u2064\u180e\ufeff\u00ad\u034f\u115f\u1160\u3164\uffa0]+"
)
# Cyrillic and Greek letters that look like Latin ones (the same set normalize folds).
_LOOKALIKES = frozenset("авеёкмнорстухѕіїјԁһԛԝӏαβεηικνορτυχωϲ" + "АВЕКМНОРСТХЅІЈΑΒΕΗΙΚΜΝΟΡΤΥΧ")
_WORD = re.compile(r"\w+")
_ASCII_LETTER = re.compile(r"[A-Za-z]")


def _ascii_neighbours(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return before.isascii() and after.isascii()


class InvisibleText:
    """Invisible and deceptive Unicode. ``redacted_text`` is the text with the invisible runs removed.

    Scores: tag characters 1.0 (they smuggle ASCII the reader cannot see), variation-selector runs 0.9
    (the same trick with another block), bidirectional overrides 0.7 (text that reads differently from
    how it is stored, as in ``invoice\\u202egpj.exe``), zero-width characters between ASCII
    characters 0.7 (a split ``ig\\u200bnore``), embeddings and isolates 0.5, words mixing Latin with
    Cyrillic or Greek look-alikes 0.7, lone surrogates 0.7 (no UTF-8 encoder takes them: an upstream
    sees an error or a replacement character, never what was scanned). Zero-width joiners inside emoji
    and non-joiners in Persian or Indic text (non-ASCII neighbours) and a leading byte-order mark are
    ordinary and not reported.
    """

    name = "invisible"

    def __init__(self, policy: InvisiblePolicy) -> None:
        self.policy = policy

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Find the invisible and deceptive characters of ``text``."""
        del context
        spans: list[Span] = []
        removed: list[Span] = []
        if not text.isascii():
            for pattern, kind, score in (
                (_TAGS, "tag-characters", 1.0),
                (_VARIATION_RUN, "variation-selectors", 0.9),
                (_BIDI_OVERRIDE, "bidi-override", 0.7),
                (_BIDI_ISOLATE, "bidi-isolate", 0.5),
                (_SURROGATES, "lone-surrogate", 0.7),
            ):
                for m in pattern.finditer(text):
                    span = Span(start=m.start(), end=m.end(), kind=kind, score=score)
                    spans.append(span)
                    removed.append(span)
            for m in _ZERO_WIDTH.finditer(text):
                if m.start() == 0 and m.group() == "\ufeff":
                    continue
                if _ascii_neighbours(text, m.start(), m.end()):
                    span = Span(start=m.start(), end=m.end(), kind="zero-width", score=0.7)
                    spans.append(span)
                    removed.append(span)
            if not _LOOKALIKES.isdisjoint(text):
                for m in _WORD.finditer(text):
                    word = m.group()
                    if not word.isascii() and _ASCII_LETTER.search(word) and not _LOOKALIKES.isdisjoint(word):
                        spans.append(Span(start=m.start(), end=m.end(), kind="homoglyph-mix", score=0.7))
        cleaned = None
        if removed:
            cleaned = "".join(
                text[a:b] for a, b in _gaps(len(text), sorted((s.start, s.end) for s in removed))
            )
        return result(
            self.name, spans[:_MAX_SPANS], flag_at=self.policy.flag_at, block_at=self.policy.block_at,
            score=max((s.score for s in spans), default=0.0), redacted_text=cleaned,
        )  # fmt: skip


def _gaps(n: int, cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    pos = 0
    for a, b in cuts:
        if a > pos:
            out.append((pos, a))
        pos = max(pos, b)
    if pos < n:
        out.append((pos, n))
    return out


# ---------------------------------------------------------------- encoded payloads

_B64 = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/_\-]{16,}={0,2}(?![A-Za-z0-9+/=_\-])")
_HEX_RUN = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_HEX_ESCAPED = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){8,}")
_HEX_SPACED = re.compile(r"\b(?:[0-9A-Fa-f]{2}[ :]){7,}[0-9A-Fa-f]{2}\b")
_TOKEN = re.compile(r"\S+")
_PCT = re.compile(r"%[0-9A-Fa-f]{2}")
#: Words whose ROT13 forms are not words: common English and the vocabulary of injections.
_COMMON = frozenset(
    {
        "the", "and", "you", "your", "to", "of", "is", "are", "a", "all", "ignore", "previous", "prior",
        "instructions", "system", "prompt", "password", "reveal", "tell", "me", "what", "this", "that",
        "with", "for", "not", "now", "secret", "print", "show", "above", "rules", "disregard", "forget",
        "from", "in", "on", "it", "be", "do", "say", "output", "write", "key",
    }
)  # fmt: skip
_ROT13_COMMON = frozenset(codecs.encode(w, "rot13") for w in _COMMON)


def _whole_runs(words: frozenset[str]) -> re.Pattern[str]:
    """Runs of a-z that are exactly one of ``words`` (in a lower-cased text)."""
    body = "|".join(sorted(words, key=lambda w: (-len(w), w)))
    return re.compile(f"(?<![a-z])(?:{body})(?![a-z])")


_COMMON_WORDS = _whole_runs(_COMMON)
_ROT13_WORDS = _whole_runs(_ROT13_COMMON)


def _textual(raw: bytes) -> str | None:
    """``raw`` as text when it is UTF-8 and reads as text (printable, some letters), else ``None``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 4:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    letters = sum(1 for c in text if c.isalpha())
    if printable < 0.95 * len(text) or letters < max(3, 0.4 * len(text.replace(" ", ""))):
        return None
    return text


def _decode_b64(value: str) -> str | None:
    core = value.rstrip("=")
    if core.isalpha() and (core.islower() or core.isupper()):
        return None  # a long word, not base64
    padded = core + "=" * (-len(core) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _textual(raw)


def _decode_hex(value: str) -> str | None:
    digits = value.replace("\\x", "").replace(" ", "").replace(":", "")
    try:
        return _textual(bytes.fromhex(digits))
    except ValueError:
        return None


class EncodedPayload:
    """Encoded runs decoded and rescanned; the score is the highest rescan score of a decoded run.

    Looked for: base64 and base64url runs of at least ``min_chars``, hex (plain, ``\\x``-escaped, or
    byte pairs separated by spaces or colons), URL-encoded tokens with at least three ``%XX`` escapes,
    Unicode tag-character runs (each tag is an ASCII character), and ROT13 (when the rotated text has
    at least three common or injection words and more than the text itself). A run decodes only to
    UTF-8 that reads as text; binary (a hash, a key) is left alone. At most ``max_candidates`` runs
    and ``max_decoded_chars`` decoded characters per text, nested encodings to ``max_depth``.
    Decoded text is rescanned by the injection detector and by the ``rescanners`` given (the banned
    lists), so a base64 "ignore previous instructions" is an injection and a hex-encoded banned word
    is banned.
    """

    name = "encoded"

    def __init__(
        self,
        policy: EncodedPolicy,
        *,
        detector: InjectionDetector | None = None,
        rescanners: Sequence[InputScanner] = (),
    ) -> None:
        self.policy = policy
        self.detector = detector or shared_detector()
        self.rescanners = tuple(rescanners)
        self.block_at = _block_at(policy.block_at, self.detector)

    def candidates(self, text: str) -> list[tuple[int, int, str, str]]:
        """``(start, end, kind, decoded)`` for each encoded run of ``text`` that decodes to text."""
        found: list[tuple[int, int, str, str]] = []
        limit = self.policy.max_candidates
        if not text.isascii():
            for m in _TAGS.finditer(text):
                decoded = "".join(chr(ord(c) - 0xE0000) for c in m.group() if 0xE0020 <= ord(c) <= 0xE007E)
                if decoded.strip():
                    found.append((m.start(), m.end(), "tag-characters", decoded))
        for m in _B64.finditer(text):
            if len(found) >= limit:
                break
            run = m.group()
            if len(run) < self.policy.min_chars:
                continue
            plain = _decode_hex(run) if _HEX_RUN.fullmatch(run) else None
            if plain:
                found.append((m.start(), m.end(), "hex", plain))
            elif b64 := _decode_b64(run):
                found.append((m.start(), m.end(), "base64", b64))
        patterns = ([_HEX_ESCAPED] if "\\x" in text else []) + [_HEX_SPACED]
        for pattern in patterns:
            for m in pattern.finditer(text):
                if len(found) >= limit:
                    break
                if len(m.group()) < self.policy.min_chars or any(s <= m.start() < e for s, e, _, _ in found):
                    continue
                plain = _decode_hex(m.group())
                if plain:
                    found.append((m.start(), m.end(), "hex", plain))
        if "%" in text:
            for m in _TOKEN.finditer(text):
                if len(found) >= limit:
                    break
                token = m.group()
                if "%" in token and len(_PCT.findall(token)) >= 3:
                    decoded = urllib.parse.unquote_plus(token, errors="strict") if _utf8(token) else ""
                    if decoded and decoded != token:
                        found.append((m.start(), m.end(), "url-encoding", decoded))
        if len(found) < limit:
            rot = self._rot13(text)
            if rot is not None:
                found.append(rot)
        return found[:limit]

    @staticmethod
    def _rot13(text: str) -> tuple[int, int, str, str] | None:
        # Words are the runs of a-z in the lower-cased text; a hit is a run that is the ROT13 form
        # of a common word. Counting with one regex each keeps the usual no-hit case in C.
        lower = text.lower()
        hits = _ROT13_WORDS.findall(lower)
        if len(hits) < 3 or len(hits) <= len(_COMMON_WORDS.findall(lower)):
            return None
        runs = list(_ROT13_WORDS.finditer(lower))
        start, end = runs[0].start(), runs[-1].end()
        return start, end, "rot13", codecs.encode(text[start:end], "rot13")

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Decode the encoded runs of ``text`` and rescan what they hold."""
        budget = self.policy.max_decoded_chars
        spans: list[Span] = []
        frontier = [(a, b, kind, decoded) for a, b, kind, decoded in self.candidates(text)]
        depth = 1
        while frontier and budget > 0:
            nested: list[tuple[int, int, str, str]] = []
            for a, b, kind, full in frontier:
                decoded = full[:budget]
                budget -= len(decoded)
                score = self._rescan(decoded, context)
                spans.append(Span(start=a, end=b, kind=kind, score=round(score, 6)))
                if depth < self.policy.max_depth:
                    nested += [(a, b, f"{kind}+{k}", d) for _, _, k, d in self.candidates(decoded)]
                if budget <= 0:
                    break
            frontier, depth = nested, depth + 1
        best: dict[tuple[int, int], Span] = {}
        for s in spans:
            key = (s.start, s.end)
            if key not in best or s.score > best[key].score:
                best[key] = s
        return result(self.name, best.values(), flag_at=self.policy.flag_at, block_at=self.block_at)

    def _rescan(self, decoded: str, context: ScanContext) -> float:
        score = self.detector.score(decoded).score
        for scanner in self.rescanners:
            score = max(score, scanner.scan(decoded, context=context).score)
        return score


def _utf8(token: str) -> bool:
    try:
        urllib.parse.unquote_to_bytes(token).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ---------------------------------------------------------------- secrets and personal data


_LAST = threading.local()


def _matches(text: str, scanner: Scanner) -> list[Match]:
    """``scanner.scan(text)``, remembered for the last text of this thread: the secrets and the
    personal-data scanners share one recognizer pass when they share a recognizer."""
    last = getattr(_LAST, "run", None)
    if last is not None and last[0] is scanner and last[1] is text:
        return last[2]  # type: ignore[no-any-return]
    found = scanner.scan(text)
    _LAST.run = (scanner, text, found)
    return found


def match_spans(text: str, scanner: Scanner, *, secrets: bool) -> list[Span]:
    """Spans of the recognizers' matches; kind ``secret:<kind>`` or ``<entity>:<kind>``."""
    out: list[Span] = []
    for m in _matches(text, scanner):
        if (m.entity is Entity.SECRET) != secrets:
            continue
        kind = f"secret:{m.kind}" if secrets else f"{m.entity.value}:{m.kind}"
        out.append(Span(start=m.start, end=m.end, kind=kind, score=round(m.score, 6)))
    return out


@lru_cache(maxsize=16)
def recognizer(entities: frozenset[Entity] | None, regions: tuple[str, ...], min_score: float) -> Scanner:
    """A shared recognizer :class:`~garrison.recognizers.pii.Scanner` (it holds no per-text state)."""
    return Scanner(entities=entities, regions=regions, min_score=min_score)


class SecretsScanner:
    """Credentials, through :func:`garrison.recognizers.pii_secrets.scan_secrets` (via the recognizers'
    :class:`~garrison.recognizers.pii.Scanner`). Provider keys score 0.95 (block by default),
    high-entropy values after ``key=`` 0.6 to 0.9. ``redacted_text`` replaces each with ``[SECRET]``."""

    name = "secrets"

    def __init__(self, policy: SecretsPolicy) -> None:
        self.policy = policy
        self._scanner = recognizer(None, DEFAULT_REGIONS, 0.5)

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Find the secrets of ``text``."""
        del context
        spans = match_spans(text, self._scanner, secrets=True)
        redacted = apply_redactions(text, spans) if self.policy.redact and spans else None
        return result(
            self.name,
            spans,
            flag_at=self.policy.flag_at,
            block_at=self.policy.block_at,
            redacted_text=redacted,
        )


class PIIScanner:
    """Personal data, through the recognizers' :class:`~garrison.recognizers.pii.Scanner` (checksums,
    phone validation, context cues). ``redacted_text`` replaces each value with ``[EMAIL]``,
    ``[PHONE]``, ``[CREDIT_CARD]``…"""

    name = "pii"

    def __init__(self, policy: PIIPolicy) -> None:
        self.policy = policy
        entities: frozenset[Entity] | None = frozenset(policy.entities) | {Entity.SECRET}
        if entities == frozenset(Entity):
            entities = None  # the same recognizer as the secrets scanner: one pass serves both
        self._scanner = recognizer(entities, tuple(policy.regions), policy.min_score)

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Find the personal data of ``text``."""
        del context
        spans = match_spans(text, self._scanner, secrets=False)
        redacted = apply_redactions(text, spans) if self.policy.redact and spans else None
        return result(
            self.name,
            spans,
            flag_at=self.policy.flag_at,
            block_at=self.policy.block_at,
            redacted_text=redacted,
        )


# ---------------------------------------------------------------- policy lists


def _alternation(words: Sequence[str], *, whole_words: bool) -> re.Pattern[str] | None:
    words = [w for w in dict.fromkeys(words) if w]
    if not words:
        return None
    body = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)" if whole_words else f"(?:{body})", re.IGNORECASE)


class BannedSubstrings:
    """Strings the policy bans, case-insensitive. Each is looked for in the text as written and in its
    normalised form (invisible characters removed, look-alike letters and leetspeak folded), so
    ``pr0ject x`` or ``proj\\u200bect x`` still hits ``project x``; an obfuscated hit spans the whole
    text. Every hit scores 1.0."""

    name = "banned-substrings"

    def __init__(self, policy: BannedSubstringsPolicy) -> None:
        self.policy = policy
        self._raw = _alternation(policy.substrings, whole_words=policy.whole_words)
        self._folded = _alternation([normalize(s) for s in policy.substrings], whole_words=policy.whole_words)

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Find the banned strings of ``text``."""
        del context
        spans: list[Span] = []
        if self._raw is not None:
            for m in self._raw.finditer(text):
                spans.append(Span(start=m.start(), end=m.end(), kind="banned-substring", score=1.0))
                if len(spans) >= _MAX_SPANS:
                    break
            if not spans and self._folded is not None and self._folded.search(normalize(text)):
                spans.append(Span(start=0, end=len(text), kind="banned-substring-obfuscated", score=1.0))
        return result(self.name, spans, flag_at=self.policy.flag_at, block_at=self.policy.block_at)


class BannedTopics:
    """Topics given as keyword sets (no model). A topic scores ``distinct keywords found / min_hits``,
    at most 1.0; keywords match whole words, case-insensitive, as written or after normalisation."""

    name = "banned-topics"

    def __init__(self, policy: BannedTopicsPolicy) -> None:
        self.policy = policy
        self._topics: list[tuple[str, re.Pattern[str], re.Pattern[str]]] = []
        for topic, words in policy.topics.items():
            raw = _alternation(words, whole_words=True)
            folded = _alternation([normalize(w) for w in words], whole_words=True)
            if raw is not None and folded is not None:
                self._topics.append((topic, raw, folded))

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Score ``text`` against every topic."""
        del context
        spans: list[Span] = []
        top = 0.0
        folded_text: str | None = None
        for topic, raw, folded in self._topics:
            matches = list(raw.finditer(text))
            hits = {m.group().casefold() for m in matches}
            if len(hits) < self.policy.min_hits:
                folded_text = normalize(text) if folded_text is None else folded_text
                hits |= {m.group() for m in folded.finditer(folded_text)}
            score = min(1.0, len(hits) / self.policy.min_hits)
            if not hits:
                continue
            top = max(top, score)
            spans += [Span(start=m.start(), end=m.end(), kind=f"topic:{topic}", score=score) for m in matches]
            if not matches:
                spans.append(Span(start=0, end=len(text), kind=f"topic:{topic}", score=score))
        return result(
            self.name,
            spans[:_MAX_SPANS],
            flag_at=self.policy.flag_at,
            block_at=self.policy.block_at,
            score=top,
        )


class RegexScanner:
    """Banned regular expressions from the policy; each match scores its rule's ``score``."""

    name = "regex"

    def __init__(self, policy: RegexPolicy) -> None:
        self.policy = policy
        flags = re.IGNORECASE if policy.ignore_case else 0
        self._patterns = [(r.name, re.compile(r.pattern, flags), r.score) for r in policy.patterns]

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Match every pattern against ``text``."""
        del context
        spans: list[Span] = []
        for name, pattern, score in self._patterns:
            for i, m in enumerate(pattern.finditer(text)):
                if i >= _MAX_SPANS:
                    break
                spans.append(Span(start=m.start(), end=m.end(), kind=f"regex:{name}", score=score))
        return result(
            self.name, spans[:_MAX_SPANS], flag_at=self.policy.flag_at, block_at=self.policy.block_at
        )


# ---------------------------------------------------------------- size and tokens

_TOKEN_PIECES = re.compile(r"[A-Za-z]{1,4}|\d{1,3}|[^\x00-\x7f]|[^\sA-Za-z\d]")


def estimate_tokens(text: str) -> int:
    """A fast upper-leaning estimate of a text's token count, without a tokenizer.

    Every run of ASCII letters counts one token per four letters (rounded up), every run of digits one
    per three (BPE vocabularies of current models split numbers in groups of up to three), every other
    non-space ASCII character one, and every non-ASCII character one (CJK characters are about one
    token each; accented Latin is over-counted). Common English words are one real token but often
    count two here, so the estimate runs high for English prose (roughly 1.2 to 1.6 times a BPE
    count); that errs towards enforcing a limit early rather than late.
    """
    return len(_TOKEN_PIECES.findall(text))


class TokenLimit:
    """Size limits: more than ``max_chars`` characters or more than ``max_tokens`` estimated tokens
    (:func:`estimate_tokens`) blocks, score 1.0. Below the limits the score is the larger of the two
    ratios and the verdict is allow."""

    name = "limits"

    def __init__(self, policy: LimitsPolicy) -> None:
        self.policy = policy

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Measure ``text`` against the limits."""
        del context
        chars = len(text)
        if chars > self.policy.max_chars:
            span = Span(start=self.policy.max_chars, end=chars, kind="over-max-chars", score=1.0)
            return ScanResult(scanner=self.name, score=1.0, verdict=Verdict.BLOCK, spans=(span,))
        tokens = estimate_tokens(text)
        if tokens > self.policy.max_tokens:
            span = Span(start=0, end=chars, kind="over-max-tokens", score=1.0)
            return ScanResult(scanner=self.name, score=1.0, verdict=Verdict.BLOCK, spans=(span,))
        ratio = max(chars / self.policy.max_chars, tokens / self.policy.max_tokens)
        return ScanResult(scanner=self.name, score=round(ratio, 6), verdict=Verdict.ALLOW)
