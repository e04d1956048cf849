"""LLM guardrails as gateway steps on OpenAI-compatible routes (``guardrails:`` on a route).

- ``input.llm``: every user message is scanned as a prompt and every tool or function message as a
  document (indirect injection) with :func:`garrison.llm.api.scan_input`. ``block`` refuses the
  request (400, nothing reaches the model); ``flag`` lets it through and marks the audit event.
- ``anonymize``: personal data and secrets in the messages are replaced by placeholders kept in a
  per-request vault, so the model never sees them; the placeholders are restored in its answer.
- ``output.llm``: the answer is scanned with :func:`garrison.llm.api.scan_output` (or, for SSE
  streams, incrementally with :class:`~garrison.llm.streaming.StreamScanner`, releasing text as soon
  as it is known to be clean). ``block`` replaces a blocked answer by an error (502 for a complete
  response, an error event that ends a stream) and redacts what it can; ``redact`` redacts but never
  blocks; ``flag`` passes the answer unchanged and marks the audit event.

Modes are set per route and may be overridden per role (``roles: {red-team: {input: flag}}``); a
caller with several overridden roles gets the most permissive of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from garrison.gateway.types import Decision, Denied, Outcome, Principal, RequestFacts
from garrison.llm.api import input_scanners, output_scanners, scan_input, scan_output
from garrison.llm.output_scanners import Vault
from garrison.llm.policy import DEFAULT_POLICY, LlmPolicy, load_policy
from garrison.llm.scanners import ScanResult, Verdict
from garrison.llm.streaming import StreamScanner

InputMode = Literal["block", "flag", "off"]
OutputMode = Literal["block", "redact", "flag", "off"]

_INPUT_ORDER = {"off": 0, "flag": 1, "block": 2}
_OUTPUT_ORDER = {"off": 0, "flag": 1, "redact": 2, "block": 3}
BLOCKED_MESSAGE = "response blocked by policy"


class RoleGuardrails(BaseModel):
    """A role's override of the route's modes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: InputMode | None = None
    output: OutputMode | None = None


class GuardrailsConfig(BaseModel):
    """``guardrails:`` of an OpenAI-compatible route."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Path | None = Field(
        default=None, description="LLM policy file (TOML or JSON); default policy if unset."
    )
    input: InputMode = "block"
    output: OutputMode = "block"
    anonymize: bool = Field(
        default=False, description="Hide personal data from the model behind placeholders."
    )
    roles: dict[str, RoleGuardrails] = Field(default_factory=dict, description="Per-role overrides.")


def _most_permissive(values: Sequence[str], order: dict[str, int]) -> str:
    return min(values, key=lambda v: order[v])


class Guardrails:
    """The guardrail steps of one route, with its policy loaded and its scanners built once."""

    def __init__(self, config: GuardrailsConfig) -> None:
        self.config = config
        self.policy: LlmPolicy = load_policy(config.policy) if config.policy is not None else DEFAULT_POLICY
        input_scanners(self.policy)  # build (and load the detector) at start, not on the first request
        output_scanners(self.policy)

    def modes(self, principal: Principal) -> tuple[str, str]:
        """The input and output modes for this caller."""
        inputs = [o.input for r, o in self.config.roles.items() if r in principal.roles and o.input]
        outputs = [o.output for r, o in self.config.roles.items() if r in principal.roles and o.output]
        return (
            _most_permissive(inputs, _INPUT_ORDER) if inputs else self.config.input,
            _most_permissive(outputs, _OUTPUT_ORDER) if outputs else self.config.output,
        )

    # -- input ------------------------------------------------------------------------------------

    def check_input(self, body: Any, principal: Principal, facts: RequestFacts) -> GuardedRequest:
        """Scan the request's messages; raise ``Denied(400)`` when blocked; say how to forward it."""
        mode, out_mode = self.modes(principal)
        vault = Vault() if self.config.anonymize else None
        guarded = GuardedRequest(mode=out_mode, vault=vault)
        if not isinstance(body, dict):
            return guarded
        prompt_parts: list[str] = []
        worst: tuple[Verdict, str] = (Verdict.ALLOW, "")
        changed = False
        for message, key, text, document in _message_texts(body):
            role = message.get("role")
            if role == "system":
                guarded.system_prompt = (guarded.system_prompt + "\n" + text).strip()
                continue
            prompt_parts.append(text)
            if mode == "off" and vault is None:
                continue
            report = scan_input(text, self.policy, document=document, vault=vault)
            if mode != "off" and _rank(report.verdict) > _rank(worst[0]):
                worst = (report.verdict, _strongest_scanner(report.results, report.verdict))
            if vault is not None and report.sanitized_text != text:
                _replace(message, key, text, report.sanitized_text)
                changed = True
        guarded.prompt = "\n".join(prompt_parts)
        verdict, scanner = worst
        if verdict is Verdict.BLOCK and mode == "block":
            facts.decisions.append(Decision(step="input.llm", outcome=Outcome.DENY, reason=f"llm_{scanner}"))
            raise Denied(400, f"llm_{scanner}", public="request blocked by policy")
        outcome = Outcome.FLAG if verdict is not Verdict.ALLOW else Outcome.ALLOW
        if vault is not None and len(vault):
            outcome = Outcome.REDACT if outcome is Outcome.ALLOW else outcome
        facts.decisions.append(
            Decision(step="input.llm", outcome=outcome, reason=f"llm_{scanner}" if scanner else "")
        )
        if changed:
            guarded.body = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return guarded

    # -- output -----------------------------------------------------------------------------------

    def check_output(self, response: Any, guarded: GuardedRequest, facts: RequestFacts) -> Any:
        """The response with every choice's message scanned; ``Denied(502)`` when blocked."""
        if guarded.mode == "off" and guarded.vault is None:
            return response
        choices = response.get("choices") if isinstance(response, dict) else None
        if not isinstance(choices, list):
            return response
        worst: tuple[Verdict, str] = (Verdict.ALLOW, "")
        redacted = False
        for choice in choices:
            message = choice.get("message") if isinstance(choice, dict) else None
            holder, key = (message, "content") if isinstance(message, dict) else (choice, "text")
            text = holder.get(key) if isinstance(holder, dict) else None
            if not isinstance(text, str) or not text:
                continue
            report = scan_output(
                text,
                prompt=guarded.prompt or None,
                system_prompt=guarded.system_prompt or None,
                policy=self.policy,
                vault=guarded.vault,
            )
            if _rank(report.verdict) > _rank(worst[0]):
                worst = (report.verdict, _strongest_scanner(report.results, report.verdict))
            if guarded.mode in ("block", "redact") or guarded.vault is not None:
                replacement = report.sanitized_text if guarded.mode != "flag" else guarded.restore(text)
                if replacement != text:
                    holder[key] = replacement
                    redacted = True
        verdict, scanner = worst
        reason = f"llm_{scanner}" if scanner else ""
        if verdict is Verdict.BLOCK and guarded.mode == "block":
            facts.decisions.append(Decision(step="output.llm", outcome=Outcome.DENY, reason=reason))
            raise Denied(502, reason or "llm_output_blocked", public=BLOCKED_MESSAGE)
        outcome = (
            Outcome.FLAG if verdict is not Verdict.ALLOW else Outcome.REDACT if redacted else Outcome.ALLOW
        )
        facts.decisions.append(Decision(step="output.llm", outcome=outcome, reason=reason))
        return response

    def stream(self, guarded: GuardedRequest, facts: RequestFacts) -> SseGuard:
        """A rewriter for this response's SSE stream."""
        scanner = StreamScanner(
            self.policy,
            prompt=guarded.prompt or None,
            system_prompt=guarded.system_prompt or None,
            vault=guarded.vault,
        )
        return SseGuard(scanner, guarded, facts)


class GuardedRequest:
    """What the input step learned that the output step needs."""

    def __init__(self, *, mode: str, vault: Vault | None) -> None:
        self.mode = mode
        """The output mode for this caller."""
        self.vault = vault
        self.prompt = ""
        self.system_prompt = ""
        self.body: bytes | None = None
        """The request body to forward instead of the caller's (anonymised), or None."""

    def restore(self, text: str) -> str:
        return self.vault.restore(text) if self.vault is not None else text


class SseGuard:
    """Rewrites an OpenAI-compatible SSE stream as its text passes the output scanners.

    Events are re-assembled across chunk boundaries; each ``choices[0].delta.content`` is replaced by
    the text the stream scanner releases (possibly empty); other events pass unchanged. On a block
    (mode ``block``) one error event and ``[DONE]`` end the stream.
    """

    def __init__(self, scanner: StreamScanner, guarded: GuardedRequest, facts: RequestFacts) -> None:
        self.scanner = scanner
        self.guarded = guarded
        self.facts = facts
        self._buffer = b""
        self._ended = False
        self._last: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to send for this upstream chunk (possibly empty)."""
        if self._ended:
            return b""
        self._buffer += chunk
        out: list[bytes] = []
        while b"\n\n" in self._buffer:
            event, self._buffer = self._buffer.split(b"\n\n", 1)
            out.append(self._event(event))
            if self._ended:
                break
        return b"".join(out)

    def finish(self) -> bytes:
        """Flush at the end of the upstream stream and record the decision."""
        tail = b""
        if not self._ended:
            tail = self._flush() + (self._buffer + b"\n\n" if self._buffer.strip() else b"")
            self._ended = True
        verdict = self.scanner.verdict
        results = self.scanner.results()
        scanner = _strongest_scanner(results, verdict)
        reason = f"llm_{scanner}" if scanner else ""
        if verdict is Verdict.BLOCK and self.guarded.mode == "block":
            outcome = Outcome.DENY
        elif verdict is not Verdict.ALLOW:
            outcome = Outcome.FLAG
        else:
            outcome = Outcome.ALLOW
        self.facts.decisions.append(Decision(step="output.llm", outcome=outcome, reason=reason))
        return tail

    def _event(self, raw: bytes) -> bytes:
        lines = raw.split(b"\n")
        data = b"".join(line[5:].lstrip() for line in lines if line.startswith(b"data:"))
        if data == b"[DONE]":
            flushed = self._flush()
            self._ended = True
            return flushed + raw + b"\n\n"
        try:
            event = json.loads(data) if data else None
        except ValueError:
            return raw + b"\n\n"
        delta = _delta(event)
        if delta is None:
            return raw + b"\n\n"
        self._last = event
        text = delta.get("content")
        released = self.scanner.feed(text) if isinstance(text, str) else ""
        if self.guarded.mode == "flag":
            released = self.guarded.restore(text) if isinstance(text, str) else ""
        if self.scanner.blocked and self.guarded.mode == "block":
            self._ended = True
            error = {"error": {"message": BLOCKED_MESSAGE, "type": "policy"}}
            return b"data: " + json.dumps(error).encode() + b"\n\ndata: [DONE]\n\n"
        delta["content"] = released
        return b"data: " + json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"

    def _flush(self) -> bytes:
        rest = self.scanner.finish()
        if self.guarded.mode == "flag" or not rest or self._last is None:
            return b""
        if self.scanner.blocked and self.guarded.mode == "block":
            error = {"error": {"message": BLOCKED_MESSAGE, "type": "policy"}}
            return b"data: " + json.dumps(error).encode() + b"\n\n"
        event = json.loads(json.dumps(self._last))
        delta = _delta(event)
        assert delta is not None
        delta["content"] = rest
        return b"data: " + json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def _delta(event: Any) -> dict[str, Any] | None:
    if not isinstance(event, dict):
        return None
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    delta = choices[0].get("delta")
    return delta if isinstance(delta, dict) else None


def _message_texts(body: dict[str, Any]) -> list[tuple[dict[str, Any], str | int, str, bool]]:
    """(container, key, text, is_document) for every text a model would read as input."""
    found: list[tuple[dict[str, Any], str | int, str, bool]] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            document = message.get("role") in ("tool", "function")
            content = message.get("content")
            if isinstance(content, str):
                found.append((message, "content", content, document))
            elif isinstance(content, list):
                for index, part in enumerate(content):
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        found.append((message, index, part["text"], document))
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            found.append((body, key, value, False))
    return found


def _replace(container: dict[str, Any], key: str | int, old: str, new: str) -> None:
    if isinstance(key, int):
        container["content"][key]["text"] = new
    else:
        container[key] = new


def _rank(verdict: Verdict) -> int:
    return {Verdict.ALLOW: 0, Verdict.FLAG: 1, Verdict.BLOCK: 2}[verdict]


def _strongest_scanner(results: tuple[ScanResult, ...] | list[ScanResult], verdict: Verdict) -> str:
    if verdict is Verdict.ALLOW:
        return ""
    for result in results:
        if result.verdict is verdict:
            return result.scanner
    return ""
