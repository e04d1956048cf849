"""The scanner's fast paths must find exactly what the plain patterns and checks they replace find."""

from __future__ import annotations

import importlib.util
import random
import re
import sys
from pathlib import Path

from stdnum import luhn

from garrison.recognizers.pii_context import ADDRESS, street_addresses
from garrison.recognizers.pii_find import SEP, lowered
from garrison.recognizers.pii_numbers import DIGIT_RUN, luhn_is_valid
from garrison.recognizers.pii_text import ALNUM_ID, IPV6, MAC, ipv6_candidates, mac_addresses

CORPUS_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "make_pii_corpus.py"
#: The digit-run pattern as first written, with a look-behind first (``re`` tries it at every position).
PLAIN_DIGIT_RUN = re.compile(
    r"(?<![\w.\-/+@])\+?(?:\(\d{1,5}\) ?)?\d+(?:(?:[ .\-/]|\) ?| ?\()\d+)*(?!\w|[.\-/]\d)"
)
#: The id pattern as first written, with ``\b`` first.
PLAIN_ALNUM_ID = re.compile(
    r"\b(?:(?P<iban>[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)"
    r"|(?P<cf>[A-Z]{6}[0-9LMNP-V]{2}[A-EHLMPR-T][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z])"
    r"|(?P<nie>[XYZ]-?\d{7}-?[A-Z])"
    r"|(?P<dni>\d{8}-?[A-Z])"
    r"|(?P<nino>[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D])"
    r"|(?P<pan>[A-Z]{3}[ABCFGHJLPT][A-Z]\d{4}[A-Z]))\b"
)
_PIECES = (
    *("Via", "Viale", "Calle", "Rua", "Avda.", "Praça", "Vía", "Urbanización", "Avenue", "rue", "RUE", "Rue"),
    *("allée", "avenue", "bd", "Hauptstraße", "Hauptstrasse", "Kirchweg", "Ring", "Am Ring", "Gartenstr."),
    *(
        "Damm",
        "Laan",
        "Dorpsstraat",
        "Keizersgracht",
        "hof",
        "Pad",
        "Street",
        "St",
        "St.",
        "Rd",
        "Main",
        "Oak",
    ),
    *(
        "Elm",
        "Nagar",
        "Marg",
        "Suite",
        "Apt",
        "12",
        "5",
        "1234",
        "123456",
        "12a",
        "7B",
        "42,",
        ",",
        ", ",
        " ",
    ),
    *("  ", "\n", "\t", SEP, "-", ".", "/", "+", "(", ")", "@", "#", "NY", "10001", "Springfield", "München"),
    *("Émile", "Ørsted", "ſtraſſe", "Bıg", "×", "٣", "ß", "10115 Berlin", "75008 Paris", "Roma", "Madrid"),
    *("+44", "(0)", "020", "7946", "0958", "x"),
)


def _corpus_texts() -> list[str]:
    spec = importlib.util.spec_from_file_location("make_pii_corpus", CORPUS_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_pii_corpus", module)
    spec.loader.exec_module(module)
    records = module.make(600, 5)
    texts = [r["text"] for r in records]
    return [*texts, SEP.join(texts)]


def _random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_PIECES) + rng.choice(["", " ", ""]) for _ in range(rng.randint(1, 12)))
            for _ in range(count)]  # fmt: skip


def _address_like(seed: int, count: int) -> list[str]:
    """Texts built around each branch of the address pattern, with random pieces between and inside."""
    rng = random.Random(seed)

    def piece() -> str:
        return rng.choice(_PIECES)

    def number() -> str:
        return rng.choice(["1", "12", "123", "1234", "12345", "123456", "1234567", "12a", "7B", "٣", "0"])

    def word() -> str:
        return rng.choice(
            ["Main", "Oak", "Baker", "Émile", "Ørsted", "North", "van", "de", "Rose", "main", "X"]
        )

    english = ["Street", "St", "Rd", "Nagar", "Walk"]
    german = ["straße", "strasse", "str.", "weg", "STRASSE", "Ring", "hof"]
    french = ["rue", "Rue", "avenue", "bd", "allée"]
    shapes = [
        lambda: f"{number()}{rng.choice(['', ','])} {word()} {rng.choice(english)}",
        lambda: f"{word()}{rng.choice(german)} {number()}",
        lambda: f"{number()}{rng.choice(['', ','])} {rng.choice(french)} {word()}",
        lambda: f"{rng.choice(['Via', 'Calle', 'Rua', 'Avda.', 'Vía'])} {word()} {word()}, {number()}",
    ]
    texts = []
    for _ in range(count):
        parts = [rng.choice(shapes)() if rng.random() < 0.5 else piece() for _ in range(rng.randint(1, 6))]
        text = rng.choice([" ", "", ", ", "\n", SEP]).join(parts)
        if rng.random() < 0.3:  # a random piece somewhere inside
            cut = rng.randint(0, len(text))
            text = text[:cut] + piece() + text[cut:]
        texts.append(text)
    return texts


def _spans(matches: object) -> list[tuple[int, int]]:
    return [m.span() for m in matches]  # type: ignore[attr-defined]


def test_digit_runs_are_the_plain_patterns() -> None:
    texts = _corpus_texts() + _random_texts(1, 4000)
    found = 0
    for text in texts:
        plain = [(m.span(), m.group()) for m in PLAIN_DIGIT_RUN.finditer(text)]
        assert [(m.span(), m.group()) for m in DIGIT_RUN.finditer(text)] == plain, text
        found += len(plain)
    assert found > 3000


def test_street_addresses_are_the_patterns_matches() -> None:
    texts = _corpus_texts() + _random_texts(2, 3000) + _address_like(3, 6000)
    found = 0
    for text in texts:
        plain = _spans(ADDRESS.finditer(text))
        assert _spans(street_addresses(text, lowered(text))) == plain, text
        assert _spans(street_addresses(text, None)) == plain
        found += len(plain)
    assert found > 3000


def test_street_addresses_with_letters_that_fold_oddly() -> None:
    # ``re`` matches ``ſ`` with ``s`` without IGNORECASE's lower(); such texts take the plain pattern
    text = "12 Hauptſtraße 5, 3 Kirchweg 7"
    assert _spans(street_addresses(text, lowered(text))) == _spans(ADDRESS.finditer(text))
    assert _spans(ADDRESS.finditer(text))


def test_luhn_is_stdnums() -> None:
    rng = random.Random(4)
    alphabet = "0123456789" * 4 + " -x٣７"
    numbers = ["", "0", "00", "79927398713", "4111111111111111", "4111111111111112", "٣٣", "１２３"]
    numbers += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20))) for _ in range(20000)]
    valid = 0
    for number in numbers:
        assert luhn_is_valid(number) == luhn.is_valid(number), number
        valid += luhn_is_valid(number)
    assert valid > 500


def _network_like(seed: int, count: int) -> list[str]:
    """Texts of hex digits, colons, dashes and dots: MAC and IPv6 addresses, broken ones, and near misses."""
    rng = random.Random(seed)
    pieces = ["0", "1", "a", "F", "00", "1a", "ff", "abcd", "0db8", "2001", ":", "::", "-", ".", " ", "g",
              "_", "x", "@", "/", "\n", SEP, "192.168.0.1", ".5", "12", "Z", "é", "٣"]  # fmt: skip

    def mac() -> str:
        sep = rng.choice(":-")
        return sep.join(f"{rng.randrange(256):02x}" for _ in range(6))

    def cisco() -> str:
        return ".".join(f"{rng.randrange(65536):04X}" for _ in range(3))

    def v6() -> str:
        groups = [f"{rng.randrange(65536):x}" for _ in range(rng.choice([2, 3, 8]))]
        return rng.choice(["::", ":"]).join(groups)

    texts = []
    for _ in range(count):
        parts = [rng.choice([mac, cisco, v6])() if rng.random() < 0.4 else rng.choice(pieces)
                 for _ in range(rng.randint(1, 10))]  # fmt: skip
        texts.append("".join(p + rng.choice(["", "", " ", ".", ":", "-"]) for p in parts))
    return texts


def test_mac_and_ipv6_addresses_are_the_patterns_matches() -> None:
    texts = _corpus_texts() + _network_like(5, 8000)
    macs = v6s = 0
    for text in texts:
        plain_macs = _spans(MAC.finditer(text))
        assert mac_addresses(text) == plain_macs, text
        plain_v6 = _spans(IPV6.finditer(text))
        assert _spans(ipv6_candidates(text)) == plain_v6, text
        macs += len(plain_macs)
        v6s += len(plain_v6)
    assert macs > 1000
    assert v6s > 1000


def test_overlap_lookup_is_the_plain_scan() -> None:
    from garrison.recognizers.pii_secrets import _overlaps

    rng = random.Random(6)
    for _ in range(3000):
        taken: list[tuple[int, int]] = []
        pos = 0
        for _ in range(rng.randint(0, 8)):
            pos += rng.randint(0, 5)
            end = pos + rng.randint(1, 6)
            taken.append((pos, end))
            pos = end
        start = rng.randint(0, pos + 3)
        end = start + rng.randint(1, 8)
        assert _overlaps(taken, start, end) == any(s < end and start < e for s, e in taken)


def _id_like(seed: int, count: int) -> list[str]:
    """Texts of capitals, digits, dashes and spaces: IBANs, Italian, Spanish, British and Indian ids."""
    rng = random.Random(seed)
    upper, digits = "ABCDEGHJKLMNPRSTVWXYZ", "0123456789"

    def run(alphabet: str, lo: int, hi: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))

    shapes = [
        lambda: run(upper, 2, 2) + run(digits, 2, 2) + " ".join(run(upper + digits, 4, 4) for _ in range(5)),
        lambda: run(upper, 6, 6) + run("0123456789LMNPQRSTUV", 2, 2) + "A" + run(digits, 2, 2) + "H501Z",
        lambda: rng.choice("XYZ") + rng.choice(["", "-"]) + run(digits, 7, 7) + rng.choice(["", "-"]) + "L",
        lambda: run(digits, 8, 9) + rng.choice(["", "-"]) + run(upper, 1, 1),
        lambda: run(upper, 2, 2) + " ".join(run(digits, 2, 2) for _ in range(3)) + " " + rng.choice("ABCDE"),
        lambda: run(upper, 3, 3) + rng.choice("ABCFGHJLPT") + run(upper, 1, 1) + run(digits, 4, 4) + "K",
    ]
    pieces = ["a", "x", "_", "-", " ", ".", "é", "٣", "Ü", SEP, "\n", "0", "Q"]
    texts = []
    for _ in range(count):
        parts = [rng.choice(shapes)() if rng.random() < 0.6 else rng.choice(pieces)
                 for _ in range(rng.randint(1, 6))]  # fmt: skip
        texts.append("".join(p + rng.choice(["", " ", "", "-"]) for p in parts))
    return texts


def test_ids_are_the_plain_patterns() -> None:
    found = 0
    for text in _corpus_texts() + _id_like(7, 8000):
        plain = [(m.span(), m.lastgroup, m.group()) for m in PLAIN_ALNUM_ID.finditer(text)]
        assert [(m.span(), m.lastgroup, m.group()) for m in ALNUM_ID.finditer(text)] == plain, text
        found += len(plain)
    assert found > 5000
