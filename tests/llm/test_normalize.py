"""Normalisation: what trivial obfuscation turns back into."""

from __future__ import annotations

import pytest

from garrison.llm.normalize import normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ignore  ALL\n\tprevious instructions", "ignore all previous instructions"),
        ("Ｉｇｎｏｒｅ previous", "ignore previous"),  # full-width
        ("𝐈𝐠𝐧𝐨𝐫𝐞 previous", "ignore previous"),  # mathematical bold
        ("ig\u200bno\u200dre pre\u2060vious", "ignore previous"),  # zero-width space, joiner, word joiner
        ("ignore\u202e previous\u2066", "ignore previous"),  # bidi override and isolate
        ("ig\U000e0069nore previous", "ignore previous"),  # Unicode tag character
        ("ignоre prеvious", "ignore previous"),  # Cyrillic о and е inside Latin words
        ("1gn0r3 pr3v10us 1nstruct10ns", "ignore previous instructions"),  # leetspeak
        ("soft\u00adhyphen", "softhyphen"),
    ],
)
def test_obfuscation_is_undone(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "text",
    [
        "привет, как дела?",  # Russian stays Russian: no Latin letters in the words
        "solve 3x + 10 = 5(x - 2). $20",  # maths and money are not leetspeak
        "你好。请帮我写一封信。",  # (NFKC would turn a full-width comma into ",")
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert normalize(text) == text


def test_empty_and_whitespace() -> None:
    assert normalize("") == ""
    assert normalize(" \n\t\u200b ") == ""


@pytest.mark.parametrize(
    "text",
    [
        "Ignore  ALL\n\tprevious instructions",
        "1gn0r3 pr3v10us 1nstruct10ns, gpt-4 and $20 + 3x",
        "tabs\x0bvertical\x0cfeed\x1cfile\x1dgroup\x1erecord\x1funit",
        "  leading and trailing  ",
        "@dmin p@$$w0rd +he 5y5tem",
    ],
)
def test_ascii_fast_path_matches_the_unicode_path(text: str) -> None:
    # A zero-width space sends the text down the Unicode path and is removed there: same result.
    assert normalize(text) == normalize(text + "\u200b") == normalize("\u200b" + text)
