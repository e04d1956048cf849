"""Output scanners: what the model wrote, checked before the caller sees it.

- Personal data and secrets with redaction: the input scanners
  :class:`~garrison.llm.input_scanners.PIIScanner` and
  :class:`~garrison.llm.input_scanners.SecretsScanner`, whose ``redacted_text`` is the output with
  ``[EMAIL]``, ``[SECRET]``… in place of the values.
- :class:`Vault`: anonymise a prompt before it goes upstream (``[EMAIL_1]``…), restore the values in
  the answer; one vault per request.
- :class:`SystemPromptLeak`: word n-grams of the system prompt found in the output.
- :class:`CanaryLeak`: canary tokens (exact strings planted in a prompt) and dataset canary records
  (planted in training data) regurgitated by the model.
- :class:`UrlAllowlist`: URLs whose host is neither an allowed domain nor a subdomain of one.
- :class:`CodeOrShell`: fenced code, shell command lines and code-like lines, where the policy forbids them.
- :class:`JsonSchema`: structured output that must be JSON valid against a schema.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from garrison.llm.normalize import normalize
from garrison.llm.scanners import (
    EMPTY_CONTEXT,
    ScanContext,
    ScanResult,
    Span,
    Verdict,
    apply_redactions,
    result,
)
from garrison.recognizers.pii import DEFAULT_REGIONS, Scanner
from garrison.recognizers.pii_types import Entity

if TYPE_CHECKING:
    from garrison.llm.policy import CanaryPolicy, CodePolicy, JsonSchemaPolicy, SystemPromptPolicy, UrlPolicy

_MAX_SPANS = 32

# ---------------------------------------------------------------- vault

_PLACEHOLDER = re.compile(r"\[([A-Z][A-Z_]*)_(\d{1,6})\]")


class Vault:
    """One request's map between placeholders and the personal data and secrets they stand for.

    :meth:`anonymize` replaces every value the recognizers find with ``[EMAIL_1]``, ``[PHONE_2]``,
    ``[SECRET_1]``… (the same value always gets the same placeholder), so the upstream model never sees
    the real values; :meth:`restore` puts them back into the model's answer. Make one per request and
    drop it afterwards. The values are never logged: ``repr`` shows only how many there are.
    """

    __slots__ = ("_by_placeholder", "_by_value", "_counts", "_scanner")

    def __init__(self, *, entities: Iterable[Entity] | None = None, regions: Sequence[str] = DEFAULT_REGIONS):
        self._scanner = _vault_scanner(None if entities is None else frozenset(entities), tuple(regions))
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Vault({len(self._by_placeholder)} values)"

    def __len__(self) -> int:
        return len(self._by_placeholder)

    def anonymize(self, text: str) -> str:
        """``text`` with each recognised value replaced by its placeholder."""
        out: list[str] = []
        pos = 0
        for m in self._scanner.scan(text):
            value = text[m.start : m.end]
            label = m.entity.value.upper().replace("-", "_")
            key = (label, value)
            token = self._by_value.get(key)
            if token is None:
                self._counts[label] = self._counts.get(label, 0) + 1
                token = f"[{label}_{self._counts[label]}]"
                self._by_value[key] = token
                self._by_placeholder[token] = value
            out.append(text[pos : m.start])
            out.append(token)
            pos = m.end
        out.append(text[pos:])
        return "".join(out)

    def restore(self, text: str) -> str:
        """``text`` with every placeholder of this vault replaced by its value; unknown ones stay."""
        if "[" not in text or not self._by_placeholder:
            return text
        return _PLACEHOLDER.sub(lambda m: self._by_placeholder.get(m.group(), m.group()), text)

    def placeholders(self) -> list[str]:
        """The placeholders handed out so far, in order (not the values)."""
        return list(self._by_placeholder)


@lru_cache(maxsize=8)
def _vault_scanner(entities: frozenset[Entity] | None, regions: tuple[str, ...]) -> Scanner:
    return Scanner(entities=entities, regions=regions)


# ---------------------------------------------------------------- n-gram leakage

_WORD = re.compile(r"\w+")


def _words(text: str) -> list[tuple[str, int, int]]:
    return [(m.group().casefold(), m.start(), m.end()) for m in _WORD.finditer(text)]


@dataclass(frozen=True, slots=True)
class NgramReference:
    """The word n-grams of a reference text (a system prompt, a canary record)."""

    n: int
    """Words per n-gram (the reference's word count when it is shorter)."""
    grams: frozenset[tuple[str, ...]]
    """Its distinct n-grams, case-folded."""
    vocabulary: frozenset[str]
    """Its words: an n-gram of another text can only match where all its words are in here."""

    def matches(
        self, text: str, exempt: frozenset[tuple[str, ...]] = frozenset()
    ) -> list[tuple[tuple[str, ...], int, int]]:
        """``(gram, start, end)`` for each n-gram of ``text`` that is in the reference and not exempt."""
        n = self.n
        vocabulary = self.vocabulary
        folded = _WORD.findall(text.casefold())
        hits: list[tuple[int, tuple[str, ...]]] = []
        run = 0  # how many words in a row, ending here, are in the reference's vocabulary
        for i, word in enumerate(folded):
            run = run + 1 if word in vocabulary else 0
            if run >= n:
                gram = tuple(folded[i - n + 1 : i + 1])
                if gram in self.grams and gram not in exempt:
                    hits.append((i, gram))
        if not hits:
            return []
        words = _words(text)  # offsets, only when something matched
        if len(words) != len(folded):  # case folding split or joined a word: redo on the words
            return self._matches_slow(words, exempt)
        return [(gram, words[i - n + 1][1], words[i][2]) for i, gram in hits]

    def _matches_slow(
        self, words: list[tuple[str, int, int]], exempt: frozenset[tuple[str, ...]]
    ) -> list[tuple[tuple[str, ...], int, int]]:
        n = self.n
        out = []
        for i in range(len(words) - n + 1):
            gram = tuple(w for w, _, _ in words[i : i + n])
            if gram in self.grams and gram not in exempt:
                out.append((gram, words[i][1], words[i + n - 1][2]))
        return out


@lru_cache(maxsize=64)
def ngram_reference(text: str, n: int) -> NgramReference:
    """The reference n-grams of ``text`` (cached: system prompts repeat from request to request)."""
    words = [w for w, _, _ in _words(text)]
    n = max(1, min(n, len(words)))
    grams = frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return NgramReference(n=n, grams=grams, vocabulary=frozenset(words))


def merge_spans(found: Iterable[tuple[int, int]], kind: str, score: float) -> list[Span]:
    """Overlapping or touching ranges merged into spans."""
    out: list[Span] = []
    for a, b in sorted(found):
        if out and a <= out[-1].end + 1:
            last = out[-1]
            out[-1] = Span(start=last.start, end=max(last.end, b), kind=kind, score=score)
        else:
            out.append(Span(start=a, end=b, kind=kind, score=score))
    return out


class SystemPromptLeak:
    """The system prompt, or part of it, in the output.

    Both texts are cut into word n-grams (``ngram`` words, case-folded); the score is the number of
    the system prompt's distinct n-grams found in the output divided by ``saturation`` (or by the
    prompt's n-gram count when it has fewer), at most 1.0. N-grams that also occur in the user's own
    prompt (``context.prompt``) do not count: an answer quoting the question is not a leak.
    """

    name = "system-prompt"

    def __init__(self, policy: SystemPromptPolicy) -> None:
        self.policy = policy

    def reference(self, context: ScanContext) -> NgramReference | None:
        """The n-grams of the system prompt in force, or ``None`` when there is none."""
        prompt = context.system_prompt or self.policy.system_prompt
        return ngram_reference(prompt, self.policy.ngram) if prompt and prompt.strip() else None

    def exempt(self, context: ScanContext, ref: NgramReference) -> frozenset[tuple[str, ...]]:
        """N-grams of the user's prompt, which do not count."""
        if not context.prompt:
            return frozenset()
        return ngram_reference(context.prompt, ref.n).grams & ref.grams

    def score_of(self, shared: int, ref: NgramReference) -> float:
        """Score for ``shared`` distinct n-grams found."""
        return min(1.0, shared / max(1, min(len(ref.grams), self.policy.saturation)))

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Look for the system prompt in ``text``."""
        ref = self.reference(context)
        if ref is None:
            return ScanResult(scanner=self.name, score=0.0, verdict=Verdict.ALLOW)
        found = ref.matches(text, self.exempt(context, ref))
        score = self.score_of(len({g for g, _, _ in found}), ref)
        spans = merge_spans(((a, b) for _, a, b in found), "system-prompt", score)
        return result(
            self.name, spans[:_MAX_SPANS], flag_at=self.policy.flag_at, block_at=self.policy.block_at,
            score=score,
        )  # fmt: skip


_INVISIBLE_IN_OUTPUT = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\U000e0000-\U000e007f]")


class CanaryLeak:
    """Canary tokens and dataset canary records in the output.

    A canary token (an exact string planted in a system prompt or a document) scores 1.0 wherever it
    appears, also with invisible characters inserted into it. A dataset canary record scores 1.0 when
    its normalised text appears whole in the normalised output, and otherwise ``0.6 + 0.4 × share``
    when ``share`` of its word n-grams (``record_ngram`` words) appear: a partial regurgitation.
    """

    name = "canary"

    def __init__(self, policy: CanaryPolicy) -> None:
        self.policy = policy
        self._tokens = [t for t in policy.tokens if t]
        self._records = [
            (normalize(r), ngram_reference(r, policy.record_ngram)) for r in policy.records if r.strip()
        ]

    def token_spans(self, text: str) -> list[Span]:
        """Spans of the canary tokens in ``text`` (whole text when only found with invisibles removed)."""
        spans: list[Span] = []
        for token in self._tokens:
            start = text.find(token)
            while start >= 0 and len(spans) < _MAX_SPANS:
                spans.append(Span(start=start, end=start + len(token), kind="canary-token", score=1.0))
                start = text.find(token, start + 1)
        if not spans and self._tokens and not text.isascii():
            stripped = _INVISIBLE_IN_OUTPUT.sub("", text)
            if any(t in stripped for t in self._tokens):
                spans.append(Span(start=0, end=len(text), kind="canary-token-obfuscated", score=1.0))
        return spans

    def record_spans(self, text: str) -> list[Span]:
        """Spans of the dataset canary records in ``text``."""
        spans: list[Span] = []
        folded: str | None = None
        for whole, ref in self._records:
            found = ref.matches(text)
            if not found and ref.n < self.policy.record_ngram:
                folded = normalize(text) if folded is None else folded
                if whole and whole in folded:
                    spans.append(Span(start=0, end=len(text), kind="dataset-canary", score=1.0))
                continue
            if not found:
                continue
            folded = normalize(text) if folded is None else folded
            share = len({g for g, _, _ in found}) / max(1, len(ref.grams))
            score = 1.0 if whole in folded else 0.6 + 0.4 * share
            spans += merge_spans(((a, b) for _, a, b in found), "dataset-canary", round(score, 6))
        return spans

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Look for canaries in ``text``."""
        del context
        spans = (self.token_spans(text) + self.record_spans(text))[:_MAX_SPANS]
        return result(self.name, spans, flag_at=self.policy.flag_at, block_at=self.policy.block_at)


# ---------------------------------------------------------------- URLs

_URL = re.compile(r"(?i)\b(?:https?|ftp|wss?)://[^\s<>\"'`)\]]+|\bwww\.[^\s<>\"'`)\]]+")
_MD_IMAGE = re.compile(r"!\[[^\]\n]{0,500}\]\(\s*<?")
_TRAILING = ".,;:!?*_~"


def url_host(url: str) -> tuple[str | None, bool]:
    """``(host, deceptive)``: the host a browser would go to, lower-case, IDNA-encoded; ``deceptive``
    when the URL carries user information (``https://allowed.com@evil.net``) or a backslash."""
    deceptive = "\\" in url
    candidate = url.replace("\\", "/")
    if candidate.lower().startswith("www."):
        candidate = "http://" + candidate
    try:
        parts = urllib.parse.urlsplit(candidate)
        host = parts.hostname
    except ValueError:
        return None, True
    if "@" in parts.netloc:
        deceptive = True
    if not host:
        return None, True
    host = host.rstrip(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return host, True
    return host, deceptive


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether ``host`` is one of ``allowed`` or a subdomain of one (``docs.allowed.com``), never a
    domain that merely starts with one (``allowed.com.evil.net``)."""
    return any(host == d or host.endswith("." + d) for d in allowed)


class UrlAllowlist:
    """URLs outside the allowlist score 1.0 (block by default); ``redacted_text`` replaces them with
    ``[URL]``. Span kinds: ``url``, ``url-deceptive`` (user information or a backslash in the
    authority), ``markdown-image`` (an image the client would fetch on its own: a classic exfiltration
    channel)."""

    name = "urls"

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Find the URLs of ``text`` outside the allowlist."""
        del context
        images = {m.end() for m in _MD_IMAGE.finditer(text)} if "![" in text else set()
        spans: list[Span] = []
        for m in _URL.finditer(text):
            url = m.group().rstrip(_TRAILING)
            host, deceptive = url_host(url)
            if host is not None and not deceptive and host_allowed(host, self.policy.allowed_domains):
                continue
            kind = "markdown-image" if m.start() in images else ("url-deceptive" if deceptive else "url")
            spans.append(Span(start=m.start(), end=m.start() + len(url), kind=kind, score=1.0))
            if len(spans) >= _MAX_SPANS:
                break
        redacted = apply_redactions(
            text, [Span(start=s.start, end=s.end, kind="url", score=s.score) for s in spans]
        )
        return result(
            self.name, spans, flag_at=self.policy.flag_at, block_at=self.policy.block_at,
            redacted_text=redacted if spans and self.policy.redact else None,
        )  # fmt: skip


# ---------------------------------------------------------------- code and shell

_FENCE = re.compile(r"```[ \t]*([\w+#.\-]*)[^\n]*\n.*?(?:```|\Z)", re.DOTALL)
_SHELL_LANGS = frozenset({"sh", "bash", "zsh", "shell", "console", "shell-session", "powershell", "ps1",
                          "pwsh", "cmd", "bat", "batch", "fish"})  # fmt: skip
_COMMANDS = (
    r"rm|curl|wget|chmod|chown|bash|sh|zsh|python3?|pip3?|npm|npx|git|docker|kubectl|ssh|scp|nc|ncat|"
    r"powershell|pwsh|iex|Invoke-WebRequest|Invoke-Expression|apt(?:-get)?|yum|dnf|brew|systemctl|dd|mkfs|"
    r"eval|export|cd|ls|cat|echo|sudo|su|kill|pkill|crontab|base64|nohup|tar|unzip|mv|cp"
)
_SHELL_LINE = re.compile(
    r"(?m)^[ \t]*(?:(?:\$|PS [^>\n]{0,80}>|>)[ \t]+\S[^\n]*|"
    rf"(?:sudo[ \t]+)?(?:{_COMMANDS})(?:[ \t]+[^\n]*)?$)"
)
_SHELL_ARG = re.compile(r"(?:^|\s)--?\w|/|\||>|&&|;|\$\(|`|://|~")
_DANGEROUS = re.compile(
    r"rm\s+-[a-zA-Z]*[rf][a-zA-Z]*\s+(?:/|~|\*|\$HOME)|(?:curl|wget)\b[^\n|]*\|\s*(?:sudo\s+)?(?:ba|z)?sh\b|"
    r"\bmkfs(?:\.\w+)?\s|\bdd\s+if=|chmod\s+(?:-R\s+)?0?777|\bnc(?:at)?\b[^\n]*\s-e\s|base64\s+(?:-d|--decode)"
    r"[^\n]*\|\s*(?:ba)?sh|:\(\)\s*\{\s*:\|:&\s*\};:|\bIEX\b|Invoke-Expression|DownloadString",
    re.IGNORECASE,
)
_CODE_LINE = re.compile(
    r"(?m)^[ \t]*(?:def \w+\(|class \w+[:(]|import \w+|from [\w.]+ import |#include\s*[<\"]|"
    r"function\s+\w+\s*\(|"
    r"(?:const|let|var) \w+\s*=|public (?:static )?[\w<>\[\]]+ \w+\(|fn \w+\(|package \w+;?$|using System|"
    r"[\w.\[\]]+\s*=\s*[^=\n]+;\s*$|\}\s*(?:else\s*\{)?\s*$|if\s*\(.*\)\s*\{\s*$)"
)


class CodeOrShell:
    """Code and shell commands in output, for policies that forbid them.

    Span kinds and scores: ``dangerous-shell`` 1.0 (``rm -rf /``, ``curl … | sh``, ``mkfs``, ``dd if=``,
    ``nc -e``, PowerShell ``IEX``…), ``shell-fence`` 0.9 (a fence tagged sh, bash, powershell…),
    ``shell-command`` 0.8 (a line starting with a prompt marker, or with a common command followed by
    an option, path, pipe or redirection), ``code-fence`` 0.7, ``code-lines`` 0.6 (three or more lines
    that look like code outside a fence). ``forbid_shell`` and ``forbid_code`` choose which count.
    """

    name = "code"

    def __init__(self, policy: CodePolicy) -> None:
        self.policy = policy

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Find code and shell commands in ``text``."""
        del context
        shell, code = self.policy.forbid_shell, self.policy.forbid_code
        spans: list[Span] = []
        fenced: list[tuple[int, int]] = []
        for m in _FENCE.finditer(text):
            fenced.append(m.span())
            lang = m.group(1).lower()
            if lang in _SHELL_LANGS and shell:
                spans.append(Span(start=m.start(), end=m.end(), kind="shell-fence", score=0.9))
            elif lang not in _SHELL_LANGS and code:
                spans.append(Span(start=m.start(), end=m.end(), kind="code-fence", score=0.7))
        if shell:
            for m in _SHELL_LINE.finditer(text):
                line = m.group()
                stripped = line.lstrip()
                prompt = stripped[:1] in "$>" or stripped.startswith("PS ")
                if prompt or _SHELL_ARG.search(line):
                    spans.append(Span(start=m.start(), end=m.end(), kind="shell-command", score=0.8))
            for m in _DANGEROUS.finditer(text):
                spans.append(Span(start=m.start(), end=m.end(), kind="dangerous-shell", score=1.0))
        if code:
            lines = [m for m in _CODE_LINE.finditer(text) if not any(a <= m.start() < b for a, b in fenced)]
            if len(lines) >= 3:
                spans += [Span(start=m.start(), end=m.end(), kind="code-lines", score=0.6) for m in lines]
        spans = sorted(spans, key=lambda s: -s.score)[:_MAX_SPANS]
        return result(self.name, spans, flag_at=self.policy.flag_at, block_at=self.policy.block_at)


# ---------------------------------------------------------------- JSON schema

_JSON_FENCE = re.compile(r"^```[ \t]*(?:json)?[ \t]*\n(.*?)\n?```$", re.DOTALL | re.IGNORECASE)


class JsonSchema:
    """Structured output: the whole output must parse as JSON (optionally inside one Markdown fence)
    and validate against the policy's schema (``jsonschema``, the draft the schema declares). Any
    failure scores 1.0; span kinds ``invalid-json`` or ``schema:<path>:<keyword>`` (first 8 errors)."""

    name = "json-schema"

    def __init__(self, policy: JsonSchemaPolicy) -> None:
        from jsonschema.validators import validator_for  # type: ignore[import-untyped]

        self.policy = policy
        schema = policy.json_schema or {}
        self._validator = validator_for(schema)(schema)

    def scan(self, text: str, *, context: ScanContext = EMPTY_CONTEXT) -> ScanResult:
        """Parse and validate ``text``."""
        del context
        body = text.strip()
        fence = _JSON_FENCE.match(body) if self.policy.allow_fence else None
        if fence:
            body = fence.group(1)
        whole = (0, len(text))
        try:
            data: Any = json.loads(body)
        except ValueError:
            span = Span(start=whole[0], end=whole[1], kind="invalid-json", score=1.0)
            return ScanResult(scanner=self.name, score=1.0, verdict=Verdict.BLOCK, spans=(span,))
        spans = []
        for i, error in enumerate(self._validator.iter_errors(data)):
            if i >= 8:
                break
            path = "/".join(str(p) for p in error.absolute_path) or "$"
            spans.append(
                Span(start=whole[0], end=whole[1], kind=f"schema:{path}:{error.validator}", score=1.0)
            )
        if not spans:
            return ScanResult(scanner=self.name, score=0.0, verdict=Verdict.ALLOW)
        return ScanResult(scanner=self.name, score=1.0, verdict=Verdict.BLOCK, spans=tuple(spans))
