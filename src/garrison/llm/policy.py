"""Which LLM scanners run, with which thresholds and lists: one typed, validated policy object.

Every scanner scores a text in ``[0, 1]`` and turns the score into a verdict with its ``flag_at`` and
``block_at`` thresholds (``block_at`` ``None``: never block, only flag). Unknown keys are errors, so a
typo in a policy file is reported rather than silently ignored. Load a file with :func:`load_policy`,
or build one in code: ``LlmPolicy.model_validate({"input": {"banned_substrings": {"substrings":
["project x"]}}})``.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from garrison.core.errors import ConfigError
from garrison.recognizers.pii import DEFAULT_REGIONS
from garrison.recognizers.pii_types import Entity


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Scored(_Model):
    enabled: bool = True
    """Run this scanner."""
    flag_at: float = Field(default=0.5, ge=0.0, le=1.0)
    """Score at or above which the text is flagged."""
    block_at: float | None = Field(default=0.9, ge=0.0, le=1.0)
    """Score at or above which the text is blocked; ``None`` never blocks."""


class InjectionPolicy(_Model):
    """Prompt injection and jailbreak (the trained detector, plus cues for documents)."""

    enabled: bool = True
    flag_at: float = Field(default=0.5, ge=0.0, le=1.0)
    block_at: float | Literal["model"] | None = "model"
    """``"model"``: the model's calibrated threshold (1% false positives on benign prompts)."""
    document_block_at: float | Literal["model"] | None = Field(default=0.95)
    """Block threshold in document mode, where every sentence is scored on its own and more pieces
    mean more chances of a false alarm (see docs/llm-guardrails.md for how 0.95 was chosen)."""
    document_cues: bool = True
    """In document mode, also score phrases that address the model from inside a document."""
    second_stage: bool | None = None
    """The MiniLM second stage for texts the first stage is unsure of: ``None`` follows the shipped
    model's default (off), ``true`` turns it on (needs the ``llm-embed`` extra; an error without it)."""


class InvisiblePolicy(_Scored):
    """Invisible and deceptive Unicode: tag characters, zero-width, bidi controls, homoglyph mixes."""


class EncodedPolicy(_Model):
    """Encoded payloads (base64, hex, URL encoding, ROT13) decoded and rescanned."""

    enabled: bool = True
    flag_at: float = Field(default=0.5, ge=0.0, le=1.0)
    block_at: float | Literal["model"] | None = "model"
    min_chars: int = Field(default=16, ge=4)
    """Shortest encoded run considered (shorter ones are ordinary words and ids)."""
    max_candidates: int = Field(default=16, ge=1, le=256)
    """Most encoded runs decoded per text; the rest are ignored."""
    max_decoded_chars: int = Field(default=16_384, ge=64)
    """Most decoded characters rescanned per text, all candidates together."""
    max_depth: int = Field(default=2, ge=1, le=4)
    """Nested encodings followed (base64 of hex of …)."""


class SecretsPolicy(_Scored):
    """Credentials: provider keys, private keys, tokens, high-entropy values after ``key=``."""

    redact: bool = True
    """Return the text with secrets replaced by ``[SECRET]``."""


class PIIPolicy(_Scored):
    """Personal data (through :mod:`garrison.recognizers`)."""

    block_at: float | None = Field(default=None, ge=0.0, le=1.0)
    entities: tuple[Entity, ...] = tuple(e for e in Entity if e is not Entity.SECRET)
    """Kinds looked for (secrets have their own scanner)."""
    regions: tuple[str, ...] = DEFAULT_REGIONS
    """Countries whose ids and phone plans are recognised."""
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    """Recognizer matches below this score are ignored."""
    redact: bool = True
    """Return the text with personal data replaced by ``[EMAIL]``, ``[PHONE]``…"""


class BannedSubstringsPolicy(_Scored):
    """Strings that must not appear (case-insensitive, also after normalisation)."""

    substrings: tuple[str, ...] = ()
    whole_words: bool = False
    """Match only at word boundaries."""


class BannedTopicsPolicy(_Scored):
    """Topics described by keyword sets; a topic is hit when ``min_hits`` distinct keywords appear."""

    block_at: float | None = Field(default=1.0, ge=0.0, le=1.0)
    topics: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    min_hits: int = Field(default=2, ge=1)
    """Distinct keywords of one topic that make a full hit (score 1.0); fewer score pro rata."""


class RegexRule(_Model):
    """One banned pattern."""

    name: str = Field(min_length=1, max_length=64)
    pattern: str
    score: float = Field(default=1.0, ge=0.0, le=1.0)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class RegexPolicy(_Scored):
    """Banned regular expressions (Python ``re`` syntax)."""

    patterns: tuple[RegexRule, ...] = ()
    ignore_case: bool = True


class LimitsPolicy(_Model):
    """Size and token limits. A text over ``max_chars`` is blocked before any other scanner runs."""

    enabled: bool = True
    max_chars: int = Field(default=32_000, ge=1, le=200_000)
    max_tokens: int = Field(default=4_096, ge=1)
    """Limit on the token estimate of :class:`~garrison.llm.input_scanners.TokenLimit`."""


class InputPolicy(_Model):
    """Scanners run on prompts and documents."""

    injection: InjectionPolicy = InjectionPolicy()
    invisible: InvisiblePolicy = InvisiblePolicy()
    encoded: EncodedPolicy = EncodedPolicy()
    secrets: SecretsPolicy = SecretsPolicy()
    pii: PIIPolicy = PIIPolicy()
    banned_substrings: BannedSubstringsPolicy = BannedSubstringsPolicy()
    banned_topics: BannedTopicsPolicy = BannedTopicsPolicy()
    regex: RegexPolicy = RegexPolicy()
    limits: LimitsPolicy = LimitsPolicy()


class SystemPromptPolicy(_Scored):
    """System-prompt leakage: word n-grams of the system prompt found in the output."""

    flag_at: float = Field(default=0.3, ge=0.0, le=1.0)
    block_at: float | None = Field(default=0.6, ge=0.0, le=1.0)
    system_prompt: str | None = None
    """The system prompt; a request's own (``scan_output(system_prompt=…)``) takes precedence."""
    ngram: int = Field(default=5, ge=2, le=16)
    """Words per n-gram."""
    saturation: int = Field(default=20, ge=1)
    """Shared n-grams that score 1.0 (fewer score pro rata; a short prompt leaked whole is 1.0)."""


class CanaryPolicy(_Scored):
    """Canary tokens (secret markers planted in prompts) and dataset canary records."""

    tokens: tuple[str, ...] = ()
    """Exact strings; any occurrence in output scores 1.0."""
    records: tuple[str, ...] = ()
    """Records planted in training data; the whole record scores 1.0, shared word n-grams less."""
    record_ngram: int = Field(default=6, ge=3, le=32)


class UrlPolicy(_Scored):
    """URLs whose host is not an allowed domain or a subdomain of one."""

    enabled: bool = False
    block_at: float | None = Field(default=None, ge=0.0, le=1.0)
    """By default disallowed URLs are redacted and flagged, not blocked."""
    allowed_domains: tuple[str, ...] = ()
    redact: bool = True
    """Return the output with disallowed URLs replaced by ``[URL]``."""

    @field_validator("allowed_domains")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d.strip().strip(".").lower() for d in value if d.strip().strip("."))


class CodePolicy(_Scored):
    """Code and shell commands in output, where the policy forbids them."""

    enabled: bool = False
    forbid_code: bool = True
    forbid_shell: bool = True


class JsonSchemaPolicy(_Model):
    """Structured output: the output must be JSON valid against ``json_schema``."""

    enabled: bool = False
    json_schema: dict[str, Any] | None = None
    allow_fence: bool = True
    """Accept the JSON wrapped in a Markdown code fence."""

    @model_validator(mode="after")
    def _schema_when_enabled(self) -> JsonSchemaPolicy:
        if self.enabled and self.json_schema is None:
            raise ValueError("json_schema is required when the JSON schema scanner is enabled")
        if self.json_schema is not None:
            from jsonschema import SchemaError  # type: ignore[import-untyped]
            from jsonschema.validators import validator_for  # type: ignore[import-untyped]

            try:
                validator_for(self.json_schema).check_schema(self.json_schema)
            except SchemaError as exc:
                raise ValueError(f"json_schema is not a valid JSON Schema: {exc.message}") from None
        return self


class StreamPolicy(_Model):
    """Incremental scanning of streamed output."""

    overlap: int = Field(default=128, ge=16, le=4096)
    """Characters held back at the end of the stream until more text shows them clean."""
    max_hold: int = Field(default=8192, ge=256)
    """Most characters held back while a possible secret (an unfinished private key) is open."""


class OutputPolicy(_Model):
    """Scanners run on model output."""

    secrets: SecretsPolicy = SecretsPolicy(block_at=None)
    """In output, secrets are redacted and flagged rather than blocked by default."""
    pii: PIIPolicy = PIIPolicy()
    system_prompt: SystemPromptPolicy = SystemPromptPolicy()
    canary: CanaryPolicy = CanaryPolicy()
    urls: UrlPolicy = UrlPolicy()
    code: CodePolicy = CodePolicy()
    json_schema: JsonSchemaPolicy = JsonSchemaPolicy()
    stream: StreamPolicy = StreamPolicy()


class LlmPolicy(_Model):
    """The whole LLM guardrail policy."""

    input: InputPolicy = InputPolicy()
    output: OutputPolicy = OutputPolicy()


DEFAULT_POLICY = LlmPolicy()


def load_policy(path: str | Path) -> LlmPolicy:
    """Read a policy from a TOML or JSON file (by its extension); ``ConfigError`` naming what is wrong."""
    file = Path(path)
    try:
        raw = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the LLM policy {file}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw) if file.suffix.lower() == ".json" else tomllib.loads(raw)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if file.suffix.lower() == ".json" else "TOML"
        raise ConfigError(f"{file}: not valid {kind}: {exc}") from None
    try:
        return LlmPolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{file}: invalid LLM policy: {problems}") from None
