"""The PII and secret scanner: each entity valid and invalid, look-alikes, columns, masking, corpus F1."""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.recognizers.pii import Entity, Match, Scanner, mask

SCANNER = Scanner()
CORPUS_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "make_pii_corpus.py"


def found(text: str, column: str | None = None) -> list[tuple[Entity, str]]:
    return [(m.entity, text[m.start : m.end]) for m in SCANNER.scan(text, column=column)]


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("write to jane.doe@example.co.uk today", Entity.EMAIL, "jane.doe@example.co.uk"),
        ("Call me at +44 20 7946 0958.", Entity.PHONE, "+44 20 7946 0958"),
        ("Phone: (415) 555-2671", Entity.PHONE, "(415) 555-2671"),
        ("Card 4111 1111 1111 1111 exp 04/27", Entity.CREDIT_CARD, "4111 1111 1111 1111"),
        ("Amex 378282246310005 on file", Entity.CREDIT_CARD, "378282246310005"),
        ("IBAN GB82 WEST 1234 5698 7654 32.", Entity.IBAN, "GB82 WEST 1234 5698 7654 32"),
        ("to DE89370400440532013000 please", Entity.IBAN, "DE89370400440532013000"),
        ("SSN 536-90-4399 on file", Entity.NATIONAL_ID, "536-90-4399"),
        ("BSN 111222333 geregistreerd", Entity.NATIONAL_ID, "111222333"),
        ("CPF 390.533.447-05 ok", Entity.NATIONAL_ID, "390.533.447-05"),
        ("codice fiscale RCCMNL83S18D969H", Entity.NATIONAL_ID, "RCCMNL83S18D969H"),
        ("DNI 54362315K", Entity.NATIONAL_ID, "54362315K"),
        ("NINO AB 12 34 56 C", Entity.NATIONAL_ID, "AB 12 34 56 C"),
        ("SIN 130 692 544", Entity.NATIONAL_ID, "130 692 544"),
        ("Aadhaar 2345 6789 0124", Entity.NATIONAL_ID, "2345 6789 0124"),
        ("Steuer-ID 86095742719", Entity.TAX_ID, "86095742719"),
        ("PAN ABCPE1234F", Entity.TAX_ID, "ABCPE1234F"),
        ("login from 10.0.0.254 failed", Entity.IP_ADDRESS, "10.0.0.254"),
        ("v6 2001:db8::8a2e:370:7334 up", Entity.IP_ADDRESS, "2001:db8::8a2e:370:7334"),
        ("MAC 00:1a:2b:3c:4d:5e seen", Entity.MAC_ADDRESS, "00:1a:2b:3c:4d:5e"),
        ("I was born on 12 March 1985.", Entity.DATE_OF_BIRTH, "12 March 1985"),
        ("DOB: 1985-03-12", Entity.DATE_OF_BIRTH, "1985-03-12"),
        ("My name is Jane Smith.", Entity.PERSON_NAME, "Jane Smith"),
        ("Ship to 1600 Pennsylvania Avenue, please", Entity.POSTAL_ADDRESS, "1600 Pennsylvania Avenue"),
        ("Hauptstraße 7, 10115 Berlin", Entity.POSTAL_ADDRESS, "Hauptstraße 7, 10115 Berlin"),
    ],
)
def test_finds_valid_values(text: str, entity: Entity, value: str) -> None:
    assert (entity, value) in found(text)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("key AKIAIOSFODNN7EXAMPLE", "aws-access-key"),
        ("token ghp_" + "a1B2" * 9, "github-token"),
        ("xoxb-12345678901-123456789012-abcdefghijklmnopqrstuvwx", "slack-token"),
        ("sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "stripe-key"),
        ("AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "google-api-key"),
        ("sk-proj-" + "Ab3_" * 12, "openai-api-key"),
        ("sk-ant-api03-" + "xY9-" * 20, "anthropic-api-key"),
        ("hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "huggingface-token"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "private-key"),
        (
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt",
        ),
        ("postgres://admin:s3cr3tPass@db.internal:5432/app", "database-url-password"),
        ('api_key = "x8Jd92kLm3Pq7Rt5Vw1Yz4Bc6"', "high-entropy"),
    ],
)
def test_finds_secrets(text: str, kind: str) -> None:
    assert kind in [m.kind for m in SCANNER.scan(text) if m.entity is Entity.SECRET]


@pytest.mark.parametrize(
    "text",
    [
        "Card 4111 1111 1111 1112 exp 04/27",  # Luhn fails
        "IBAN GB82 WEST 1234 5698 7654 33",  # mod 97 fails
        "SSN 000-12-3456",  # area 000 is never issued
        "CPF 390.533.447-06",
        "codice fiscale RCCMNL83S18D969X",
        "DNI 54362315A",
        "BSN 111222334",
        "Steuer-ID 86095742711",
        "MAC 00:1a:2b:3c:4d",
        "api_key = aaaaaaaaaaaaaaaaaaaaaaaa",  # low entropy
        "eyJub3QiOiJqd3QifQ.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0",  # header has no alg
    ],
)
def test_rejects_checksum_failures(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "Server 192.168.100.200 restarted",
        "SSN 536-90-4399 on file",
        "The meeting is on 2024-03-12 at 10:30.",
        "Order #4111111111111111 has shipped.",
        "Version 10.2.33.4 released",
        "Request 550e8400-e29b-41d4-a716-446655440000 took 30 ms",
        "Timestamp 1699999999 in epoch seconds",
        "Card 4111 1111 1111 1111 exp 04/27",
    ],
)
def test_look_alikes_are_not_phones(text: str) -> None:
    assert Entity.PHONE not in {e for e, _ in found(text)}


def test_order_numbers_are_not_cards() -> None:
    assert found("Order #4111111111111111 has shipped.") == []
    assert found("Tracking number 4012888888881881 expected Monday") == []


def test_dates_are_birth_dates_only_in_context() -> None:
    assert found("The meeting is on 12/03/1985.") == []
    assert found("Released on March 12, 1985") == []
    assert found("born 12/03/1985") == [(Entity.DATE_OF_BIRTH, "12/03/1985")]


@pytest.mark.parametrize(
    ("column", "value", "entity"),
    [
        ("dob", "1985-03-12", Entity.DATE_OF_BIRTH),
        ("birth_date", "12.03.1985", Entity.DATE_OF_BIRTH),
        ("first_name", "Jane", Entity.PERSON_NAME),
        ("Surname", "van der Berg", Entity.PERSON_NAME),
        ("street_address", "12 Rue Lepic, 75018 Paris", Entity.POSTAL_ADDRESS),
        ("ssn", "536904399", Entity.NATIONAL_ID),
        ("tax_id", "86095742719", Entity.TAX_ID),
    ],
)
def test_column_context(column: str, value: str, entity: Entity) -> None:
    assert entity in {e for e, _ in found(value, column)}


def test_column_names_that_are_not_personal() -> None:
    assert found("Acme Corp", "company_name") == []
    assert found("1985-03-12", "created_at") == []
    assert Entity.NATIONAL_ID not in {e for e, _ in found("536904399")}


def test_scanner_entities_and_regions() -> None:
    only_email = Scanner(entities=[Entity.EMAIL])
    assert [m.entity for m in only_email.scan("a@b.io SSN 536-90-4399")] == [Entity.EMAIL]
    assert Scanner(regions=["GB"]).scan("BSN 111222333") == []


def _revealed(original: str, masked: str) -> int:
    """How many letters and digits of ``masked`` are not stars."""
    return len(re.findall(r"[^\W_]", masked))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe@example.com", "j***@e***.com"),
        ("card 4242 4242 4242 4242", "**** **** **** 4242"),
        ("SSN 536-90-4399", "***-**-**99"),
    ],
)
def test_mask_shapes(text: str, expected: str) -> None:
    (match,) = SCANNER.scan(text)
    assert mask(text, match) == expected


@pytest.mark.parametrize(
    "secret",
    [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_" + "a1B2" * 9,
        "sk-proj-" + "Ab3_" * 12,
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    ],
)
def test_mask_never_reveals_a_secret(secret: str) -> None:
    text = f"token {secret}"
    (match,) = SCANNER.scan(text)
    masked = mask(text, match)
    body = secret[8:]
    assert body not in masked
    assert masked.endswith(f"({len(secret)} chars)")
    assert len(masked) < 30


def test_mask_reveals_few_characters() -> None:
    text = (
        "Phone +44 20 7946 0958, IBAN DE89370400440532013000, BSN 111222333, ip 10.20.30.40, "
        "MAC 00:1a:2b:3c:4d:5e, born 12/03/1985, my name is Jane Smith"
    )
    limits = {Entity.PHONE: 2, Entity.IBAN: 6, Entity.NATIONAL_ID: 2, Entity.IP_ADDRESS: 2,
              Entity.MAC_ADDRESS: 6, Entity.DATE_OF_BIRTH: 0, Entity.PERSON_NAME: 2}  # fmt: skip
    matches = SCANNER.scan(text)
    assert {m.entity for m in matches} == set(limits)
    for m in matches:
        assert _revealed(text[m.start : m.end], mask(text, m)) <= limits[m.entity]


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("0123456789 -+./:@()abcXYZ_=ey\n"), max_size=120) | st.text(max_size=80)
)
def test_scan_never_raises_and_spans_are_sound(text: str) -> None:
    matches = Scanner(min_score=0.0).scan(text)
    for m in matches:
        assert isinstance(m, Match)
        assert 0 <= m.start < m.end <= len(text)
        assert 0.0 <= m.score <= 1.0
        mask(text, m)
    ordered = sorted(matches, key=lambda m: m.start)
    for a, b in itertools.pairwise(ordered):
        assert a.end <= b.start or a.entity is not b.entity


def _corpus_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_pii_corpus", CORPUS_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_pii_corpus", module)
    spec.loader.exec_module(module)
    return module


def test_corpus_is_deterministic() -> None:
    corpus = _corpus_module()
    assert corpus.make(50, 3) == corpus.make(50, 3)
    assert corpus.make(50, 3) != corpus.make(50, 4)


def test_corpus_f1() -> None:
    records = _corpus_module().make(300, 11)
    counts: dict[str, list[int]] = {}
    for record in records:
        gold = [(s["entity"], s["start"], s["end"]) for s in record["spans"]]
        pred = [
            (m.entity.value, m.start, m.end) for m in SCANNER.scan(record["text"], column=record["column"])
        ]
        for entity, start, end in pred:
            c = counts.setdefault(entity, [0, 0, 0, 0])
            c[0] += 1
            c[1] += any(g == entity and gs < end and start < ge for g, gs, ge in gold)
        for entity, start, end in gold:
            c = counts.setdefault(entity, [0, 0, 0, 0])
            c[2] += 1
            c[3] += any(p == entity and ps < end and start < pe for p, ps, pe in pred)
    for entity in ("email", "iban", "credit-card", "ip-address"):
        n_pred, tp_pred, n_gold, tp_gold = counts[entity]
        precision, recall = tp_pred / n_pred, tp_gold / n_gold
        f1 = 2 * precision * recall / (precision + recall)
        assert f1 >= 0.9, (entity, precision, recall)


# ---------------------------------------------------------------- scanning many values at once


@pytest.mark.parametrize("min_score", [0.5, 0.0])
def test_scan_many_finds_what_scan_finds_on_the_corpus(min_score: float) -> None:
    records = _corpus_module().make(600, 5)
    scanner = Scanner(min_score=min_score)
    columns: dict[str | None, list[str]] = {}
    for record in records:
        columns.setdefault(record["column"], []).append(record["text"])
    for column, texts in columns.items():
        for order in (texts, texts[::-1]):  # a value's neighbours change nothing
            expected = [scanner.scan(t, column=column) for t in order]
            assert scanner.scan_many(order, column=column) == expected


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from("0123456789 -+./:@()abcDEX_=eyIBAN\n\x00"), max_size=40)
        | st.sampled_from(
            [
                "Call me at",
                "4155552671",
                "born",
                "12/03/1985",
                "SSN",
                "536904399",
                "1:2:3:4:5:6:1.2.3.4",
                "a:b:c:d:e:f:g",
                "nee 1985-03-12",
                "AKIAIOSFODNN7EXAMPLE",
                "-----BEGIN RSA PRIVATE KEY-----",
                "-----END RSA PRIVATE KEY-----",
                "12 rue",
                "de la Paix",
                "jane@example.com",
            ]
        ),
        max_size=12,
    ),
    st.sampled_from([None, "phone", "dob", "full_name", "street_address", "ssn"]),
)
def test_scan_many_is_scan_per_value(texts: list[str], column: str | None) -> None:
    """NUL joins the values and no recognizer looks across it: context, dates, keys stay in their value."""
    scanner = Scanner(min_score=0.0)
    expected = [scanner.scan(t, column=column) for t in texts]
    assert scanner.scan_many(texts, column=column) == expected
    seen: list[list[tuple[Entity, str]]] = [[] for _ in texts]
    for i, scanned, m in scanner.iter_matches(texts, column=column):
        seen[i].append((m.entity, scanned[m.start : m.end]))
    assert seen == [
        [(m.entity, t[m.start : m.end]) for m in ms] for t, ms in zip(texts, expected, strict=True)
    ]


def test_context_does_not_leak_between_values() -> None:
    assert SCANNER.scan_many(["Call me at", "4155552671"]) == [[], []]
    assert SCANNER.scan_many(["born", "12/03/1985"]) == [[], []]
    assert SCANNER.scan_many(["SSN", "536904399"]) == [[], SCANNER.scan("536904399")]


def test_scan_many_keeps_empty_texts_and_texts_with_nul() -> None:
    texts = ["", "mail a@b.io", "x\x00a@b.io", "a@b.io"]
    assert SCANNER.scan_many(texts) == [SCANNER.scan(t) for t in texts]


def _phone_reference(run: str, regions: tuple[str, ...]) -> tuple[str | None, bool] | None:
    """The first version of the phone check, one region after the other through ``phonenumbers``."""
    import phonenumbers

    possible = None
    for region in (None,) if run.startswith("+") else regions:
        try:
            number = phonenumbers.parse(run, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.region_code_for_number(number), True
        if possible is None and phonenumbers.is_possible_number(number):
            possible = number
    return None if possible is None else (phonenumbers.region_code_for_number(possible), False)


def test_phone_check_matches_the_plain_phonenumbers_loop() -> None:
    import random

    from garrison.recognizers.pii import DEFAULT_REGIONS
    from garrison.recognizers.pii_numbers import NumberRecognizer

    rng = random.Random(11)
    recognizer = NumberRecognizer(entities=frozenset(Entity), regions=DEFAULT_REGIONS)
    prefixes = ["", "", "", "00", "011", "0", "1", "44", "49", "33", "91", "0044", "001", "+", "+1", "+44"]
    for _ in range(1500):
        digits = rng.choice(prefixes) + "".join(rng.choice("0123456789") for _ in range(rng.randint(5, 13)))
        run = "".join(c + (rng.choice(" -./") if rng.random() < 0.2 else "") for c in digits).rstrip(" -./")
        assert recognizer._parse_phone(run) == _phone_reference(run, DEFAULT_REGIONS), run


def test_iban_check_matches_stdnum() -> None:
    import random
    import string

    from stdnum import iban, numdb

    from garrison.recognizers.pii_text import _iban_ok

    rng = random.Random(3)
    registry = numdb.get("iban")
    countries = [*(prefix[1] for prefix in registry.prefixes), "XX"]
    for _ in range(3000):
        country = rng.choice(countries)
        layout = registry.info(country)[0][1].get("bban", "4!n10!c")
        body = ""
        for count, kind in re.findall(r"(\d+)!([nac])", layout):
            alphabet = {
                "n": string.digits,
                "a": string.ascii_uppercase,
                "c": string.ascii_uppercase + "0123456789",
            }
            body += "".join(rng.choice(alphabet[kind]) for _ in range(int(count)))
        if rng.random() < 0.2:
            body = body[:-1]
        number = country + iban.calc_check_digits(country + "00" + body) + body
        if rng.random() < 0.2:
            at = rng.randrange(len(number))
            number = number[:at] + rng.choice(string.digits + string.ascii_uppercase) + number[at + 1 :]
        if rng.random() < 0.4:
            number = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        assert _iban_ok(number) == iban.is_valid(number), number


def test_shape_flags_are_never_wrong_when_false() -> None:
    from garrison.recognizers.pii_find import shape

    for text in ["", "abc", "ABC", "a b", "a\u00a0b", "x1", "\u0661", "123", "\u00dfa", " lead", "trail\t"]:
        view = shape(text)
        assert view.upper or not any(c != c.lower() for c in text)
        assert view.cased or not any(c.lower() != c or c.upper() != c for c in text)
        assert view.digit or not re.search(r"\d", text)
        assert view.space or not re.search(r"\s", text)
