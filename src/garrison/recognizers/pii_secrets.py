"""Recognizers for secrets: provider key formats first, then high-entropy strings where a key is expected.

Provider formats are public (each vendor documents its prefix) and specific enough to need no context.
A generic high-entropy string is reported only right after a word such as ``key``, ``token``,
``secret`` or ``password`` and an assignment (``=``, ``:``), and only if its Shannon entropy is high:
hashes and ids in prose stay quiet.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import math
import re
from collections import Counter
from collections.abc import Iterator

from garrison.recognizers.pii_find import literal_starts, match_at
from garrison.recognizers.pii_types import Entity, Match, new_match

#: One alternation, each branch anchored on a literal prefix; the group name is the kind.
PROVIDER_KEY = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"(?P<aws_access_key>(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z2-7]{16})"
    r"|(?P<github_token>(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255}))"
    r"|(?P<slack_token>xox[bpoasr]-[A-Za-z0-9\-]{10,250})"
    r"|(?P<stripe_key>(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247})"
    r"|(?P<google_api_key>AIza[A-Za-z0-9_\-]{35})"
    r"|(?P<anthropic_api_key>sk-ant-[A-Za-z0-9_\-]{32,200})"
    r"|(?P<openai_api_key>sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,200})"
    r"|(?P<huggingface_token>hf_[A-Za-z0-9]{30,40})"
    r"|(?P<jwt>eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,})"
    r")(?![A-Za-z0-9_\-])"
    r"|(?P<private_key>-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"[^\x00]{0,20000}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)"
    r"|[a-z][a-z0-9+.\-]{1,20}://[^\s:/@\x00]{1,64}:(?P<database_url_password>[^\s/@\x00]{1,128})@[^\s/@\x00]"
)
#: ``api_key = "…"``, ``token: …``, ``"password": "…"``: the value after a key-like word.
ASSIGNED_VALUE = re.compile(
    r"(?i)(?:key|token|secret|passw(?:or)?d|passwd|pwd|credential|auth)[\w\-]*[\"']?\s*(?::=|=>|[:=])\s*"
    r"[\"']?(?P<value>[A-Za-z0-9+/_\-=.~!@#$%^&*]{16,256})"
)
#: Every PROVIDER_KEY match starts at one of these literals, or 2 to 21 characters before ``://``.
_KEY_NEEDLES = (
    *((w, 0) for w in ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "gh", "xox", "sk_", "rk_", "AIza",
                       "sk-", "hf_", "eyJ", "-----BEGIN ")),
    *(("://", back) for back in range(2, 22)),
)  # fmt: skip
#: The same starts in two passes instead of one per literal: the AWS and Google prefixes (all an ``A``
#: and three more characters) as one pattern, the others one by one.
_A_PREFIXES = re.compile(r"A(?=KIA|SIA|GPA|IDA|ROA|NPA|Iza)")
_OTHER_NEEDLES = tuple((w, back) for w, back in _KEY_NEEDLES if not w.startswith("A"))


def key_starts(text: str) -> list[int]:
    """``literal_starts(text, _KEY_NEEDLES)``: where a provider key may start (the tests compare)."""
    found = literal_starts(text, _OTHER_NEEDLES)
    if "A" in text:
        prefixed = [m.start() for m in _A_PREFIXES.finditer(text)]
        if prefixed:
            return sorted(set(found).union(prefixed))
    return found


#: Every ASSIGNED_VALUE match starts at one of these, in the lower-cased text.
_ASSIGN_NEEDLES = tuple((w, 0) for w in ("key", "token", "secret", "passw", "pwd", "credential", "auth"))
_MIN_ENTROPY = 3.5
_NO_END = 1 << 62
_JWT_HEADER_KEYS = frozenset({"alg", "typ", "kid"})


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s character distribution."""
    n = len(value)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _is_jwt(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and bool(_JWT_HEADER_KEYS & decoded.keys())


def _overlaps(taken: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether ``[start, end)`` overlaps a span of ``taken`` (sorted, none overlapping another).

    Such spans are sorted by end too, so only the first one that ends after ``start`` can overlap.
    """
    i = bisect.bisect_right(taken, (start, _NO_END))
    if i > 0 and taken[i - 1][1] > start:
        return True
    return i < len(taken) and taken[i][0] < end


def scan_secrets(text: str, low: str | None) -> Iterator[Match]:
    """Yield the secrets in ``text``; ``low`` is :func:`~garrison.recognizers.pii_find.lowered` of it."""
    taken: list[tuple[int, int]] = []
    for m in match_at(PROVIDER_KEY, text, key_starts(text)):
        kind = m.lastgroup or "secret"
        start, end = m.span(kind)
        if kind == "jwt" and not _is_jwt(m.group(kind)):
            continue
        taken.append((start, end))
        yield new_match(
            entity=Entity.SECRET, kind=kind.replace("_", "-"), start=start, end=end, score=0.95,
            validated=kind == "jwt",
        )  # fmt: skip
    assigned = (
        ASSIGNED_VALUE.finditer(text)
        if low is None
        else match_at(ASSIGNED_VALUE, text, literal_starts(low, _ASSIGN_NEEDLES))
    )
    for m in assigned:
        start, end = m.span("value")
        value = m.group("value")
        if _overlaps(taken, start, end):
            continue
        entropy = shannon_entropy(value)
        if entropy < _MIN_ENTROPY or value.isalpha() or value.isdigit():
            continue
        yield new_match(
            entity=Entity.SECRET, kind="high-entropy", start=start, end=end,
            score=min(0.6 + (entropy - _MIN_ENTROPY) * 0.2, 0.9), validated=False,
        )  # fmt: skip
