"""Text normalisation before the injection detector sees a text.

Trivial obfuscation must not change what the classifier sees: full-width and mathematical letters,
upper case, zero-width and other invisible characters, Unicode tag characters, bidirectional controls,
runs of whitespace, Cyrillic or Greek look-alikes mixed into Latin words, and leetspeak inside words.
The same function runs at training and at scoring time, so the model only ever sees normalised text.
"""

from __future__ import annotations

import re
import unicodedata

# Invisible characters removed outright: format characters (Cf: zero-width space/joiners, bidi
# controls and isolates, soft hyphen, word joiner, BOM, the tag block U+E0000-E007F), variation
# selectors, and the fillers and separators that render as nothing.
_INVISIBLE = re.compile(
    "["
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
    "]"
)

# Cyrillic and Greek letters that look like Latin ones. Applied only inside a token that also holds
# Latin letters, so ordinary Russian or Greek text is left alone.
_HOMOGLYPHS = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
        "ɡ": "g", "һ": "h", "ԛ": "q", "ԝ": "w", "ӏ": "l", "α": "a", "β": "b", "ε": "e", "η": "n",
        "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
        "ϲ": "c", "ɩ": "i", "ı": "i",
    }
)  # fmt: skip
# Leetspeak digits and symbols, mapped only inside a token with at least two Latin letters.
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "+": "t"}
)
_LATIN = re.compile(r"[a-z]")
_LEET_CHARS = re.compile(r"[013457@$+]")
# Tokens that folding may change (their start is where no non-space precedes; no backtracking beyond
# one token): ASCII ones holding a leetspeak character and two Latin letters, and any token holding a
# Latin letter and a leetspeak or non-ASCII character. Every other token (a Russian or Chinese word,
# a number) is left as it is without a Python call.
_LEET_TOKEN = re.compile(r"(?<!\S)(?=[^\s013457@$+]*[013457@$+])(?=[^\sa-z]*[a-z][^\sa-z]*[a-z])\S+")
_FOLDABLE_TOKEN = re.compile(
    "(?<!\\S)(?=[^\\sa-z]*[a-z])(?=[^\\s013457@$+\x80-\U0010ffff]*[013457@$+\x80-\U0010ffff])\\S+"
)


def _fold_token(match: re.Match[str]) -> str:
    token = match.group()
    if not token.isascii() and _LATIN.search(token):
        token = token.translate(_HOMOGLYPHS)
    if _LEET_CHARS.search(token) and len(_LATIN.findall(token)) >= 2:
        token = token.translate(_LEET)
    return token


def _fold_leet(match: re.Match[str]) -> str:
    return match.group().translate(_LEET)


def normalize(text: str) -> str:
    """Return ``text`` as the detector sees it.

    NFKC, then case folding, then invisible characters removed, then look-alike letters and
    leetspeak folded inside mixed tokens, then whitespace collapsed to single spaces and stripped.
    """
    if text.isascii():
        # NFKC changes no ASCII text, case folding it is lower(), and nothing in it is invisible.
        text = text.lower()
    else:
        text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text).casefold())
    # str.split() splits on exactly the characters \s matches: this collapses and strips whitespace.
    text = " ".join(text.split())
    if text.isascii():
        return _LEET_TOKEN.sub(_fold_leet, text) if _LEET_CHARS.search(text) else text
    return _FOLDABLE_TOKEN.sub(_fold_token, text)
