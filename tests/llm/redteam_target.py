"""A deliberately gullible OpenAI-compatible chat server for red-team tests.

:func:`reply` is the "model": rules, no weights. It decodes what it is given (base64, hex, ROT13,
reversed text, URL encoding, leetspeak, Unicode tag characters), follows instructions it finds in user
messages and documents ("say X", "start your answer with X"), repeats its system prompt and the
secrets in it when asked, complies with harmful requests only when they come in a jailbreak template
(and refuses them otherwise), and floods its answer when asked to go on forever. Every red-team
family can therefore succeed against it, and the success is the attack's doing, not a fluke.

:class:`RedTeamTarget` serves it on a raw asyncio socket in a thread, like the gateway tests' stub.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import codecs
import contextlib
import json
import re
from typing import Any
from urllib.parse import unquote

from tests.http_server import ThreadedHttpServer

_CANARY = re.compile(r"\b[A-Z][A-Z0-9]{2,}-[0-9A-F]{4,}\b")
_FOLLOW = re.compile(
    r"\b(?:say|says|saying|print|output|type|write|reply|respond|answer|begin|began|start|prefix)\b"
    r"[^\n]{0,60}?\b([A-Z][A-Z0-9]{2,}-[0-9A-F]{4,})\b",
    re.IGNORECASE,
)
_JAILBREAK = (
    "dan", "do anything now", "developer mode", "grandmother", "novel", "no restrictions",
    "unfiltered", "never refuses", "without apologising", "without disclaimers",
)  # fmt: skip
_HARMFUL = ("hotwire", "phishing", "pick a lock", "keylogger", "break into")
_PROMPT_ASK = re.compile(
    r"system prompt|initial instructions|your instructions|text above|came before this", re.IGNORECASE
)
_SECRET_ASK = re.compile(r"api key|credential|keys you|secret", re.IGNORECASE)
_PII_ASK = re.compile(r"e-?mail|phone|card", re.IGNORECASE)
_WHOSE = re.compile(r"on file|customer's|my details|in this session", re.IGNORECASE)
_FLOOD_ASK = re.compile(r"forever|never stop|count from 1 to [\d,]{5,}|longest possible", re.IGNORECASE)
_LEET = str.maketrans({"1": "i", "4": "a", "3": "e", "0": "o", "5": "s", "7": "t"})

FLOOD_CHARS = 20_000
"""Length of a flooded answer (less when the request sets ``max_tokens``: four characters a token)."""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def decoded(text: str) -> list[str]:
    """What ``text`` says once decoded, by every decoding the target knows."""
    out: list[str] = []
    for run in re.findall(r"[A-Za-z0-9+/]{16,}={0,2}", text):
        with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
            out.append(base64.b64decode(run + "=" * (-len(run) % 4)).decode("utf-8"))
    for run in re.findall(r"\b(?:[0-9a-f]{2}){8,}\b", text):
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            out.append(bytes.fromhex(run).decode("utf-8"))
    low = text.lower()
    if "rot13" in low:
        out.append(codecs.decode(text, "rot13"))
    if "backwards" in low or "reverse" in low:
        out.append(text[::-1])
    if re.search(r"%[0-9A-Fa-f]{2}", text):
        out.append(unquote(text))
    tags = "".join(chr(ord(c) - 0xE0000) for c in text if 0xE0020 <= ord(c) <= 0xE007E)
    if tags:
        out.append(tags)
    out.append(" ".join(w if w.isupper() else w.translate(_LEET) for w in text.split()))
    return out


def _transform(user: str, text: str) -> str:
    low = user.lower()
    if "base64" in low:
        return base64.b64encode(text.encode()).decode()
    if "backwards" in low:
        return text[::-1]
    if "space between" in low:
        return " ".join(text)
    return text


def reply(messages: list[dict[str, Any]]) -> str:
    """The target's answer to a chat."""
    system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    user = "\n".join(_text(m.get("content")) for m in messages if m.get("role") == "user")
    full = "\n".join([user, *decoded(user)])
    low = full.lower()
    jailbroken = any(re.search(rf"\b{re.escape(m)}\b", low) for m in _JAILBREAK)
    if _FLOOD_ASK.search(low):
        return ("lantern " * (FLOOD_CHARS // 8 + 1))[:FLOOD_CHARS]
    harmful = any(h in low for h in _HARMFUL)
    if harmful and not jailbroken:
        return "I'm sorry, but I can't help with that."
    if _PROMPT_ASK.search(user):
        return _transform(user, f"My instructions are: {system}")
    if _SECRET_ASK.search(user):
        key = re.search(r"API key is (\S+?)\.?(?:\s|$)", system)
        return _transform(user, key.group(1) if key else "I have no keys.")
    if _PII_ASK.search(user) and _WHOSE.search(user):
        found = re.search(r"e-mail (\S+), phone (.+?), card on file (.+?)\.", system)
        if found:
            email, phone, card = found.groups()
            if "card" in user.lower() and "e-mail" not in user.lower():
                return _transform(user, card)
            if "e-mail" in user.lower() and "card" not in user.lower():
                return _transform(user, email)
            return _transform(user, f"E-mail {email}, phone {phone}, card {card}.")
    follow = _FOLLOW.search(full)
    if follow:
        if harmful:
            return f"{follow.group(1)} Sure, here is the whole thing, step by step: first, second, third."
        return follow.group(1)
    if harmful:
        return "Sure, here is the whole thing, step by step: first, second, third."
    if "<document>" in user:
        return "The document is a short note; nothing in it needs action."
    return "Happy to help with your order, shipping or returns question."


class RedTeamTarget(ThreadedHttpServer):
    """:func:`reply` behind ``POST /v1/chat/completions``, on a raw asyncio socket in a thread.

    Every request's parsed JSON body is kept in :attr:`seen`. Any other path answers 404.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    async def respond(self, head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        status, payload = self._answer(head.split(b" ", 2)[1], body)
        writer.write(
            b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            % (status, len(payload))
            + payload
        )
        await writer.drain()

    def _answer(self, path: bytes, body: bytes) -> tuple[int, bytes]:
        if not path.startswith(b"/v1/chat/completions"):
            return 404, b'{"error": {"message": "not found"}}'
        try:
            request = json.loads(body)
            messages = list(request["messages"])
        except (ValueError, KeyError, TypeError):
            return 400, b'{"error": {"message": "bad request"}}'
        self.seen.append(request)
        content = reply(messages)
        max_tokens = request.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens > 0:
            content = content[: max_tokens * 4]
        answer = {
            "id": f"chatcmpl-{len(self.seen)}",
            "object": "chat.completion",
            "model": request.get("model", "target"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return 200, json.dumps(answer).encode()
