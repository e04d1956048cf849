"""The second round of scanner fast paths must answer exactly what the code they stand in for answers."""

from __future__ import annotations

import dataclasses
import random
import string

import pytest
from stdnum import iban, verhoeff
from stdnum.de import idnr
from stdnum.fr import nir
from stdnum.in_ import aadhaar
from stdnum.iso7064 import mod_11_10

from garrison.recognizers import pii_context, pii_numbers, pii_secrets, pii_text
from garrison.recognizers.pii import DEFAULT_REGIONS
from garrison.recognizers.pii_find import SEP, literal_starts
from garrison.recognizers.pii_types import Entity, Match, new_match
from tests.recognizers.test_fast_paths import _address_like, _corpus_texts, _id_like, _random_texts


def _dni_like(seed: int, count: int) -> list[str]:
    """Spanish DNIs glued to, inside and after IBAN-like and other capital-led ids."""
    rng = random.Random(seed)
    pieces = ["12345678Z", "12345678-Z", "123456789Z", "ES12 3456", "ES91 2100 0418 4502 0005 1332",
              "X1234567L", "AB 12 34 56 C", "ABCPD1234E", "1", "Q", " ", "-", "a", "_", "é", SEP, "0",
              "Z"]  # fmt: skip
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 7))) for _ in range(count)]


def test_ids_from_capitals_are_the_patterns_matches() -> None:
    found = dnis = 0
    for text in _corpus_texts() + _id_like(3, 6000) + _dni_like(4, 12000):
        plain = [(m.lastgroup, m.start(), m.group()) for m in pii_text.ALNUM_ID.finditer(text)]
        assert list(pii_text.alnum_ids(text)) == plain, text
        found += len(plain)
        dnis += sum(kind == "dni" for kind, _, _ in plain)
    assert found > 5000
    assert dnis > 1000


def test_address_starts_from_capitals_are_the_patterns_starts() -> None:
    starts = firsts = 0
    for text in _corpus_texts() + _address_like(8, 6000) + _random_texts(9, 6000):
        plain = sorted({m.start() for m in pii_context._NUMBER_THEN_WORD.finditer(text)})
        assert sorted(pii_context._numbers_then_words(text)) == plain, text
        first = [m.start() for m in pii_context._STREET_FIRST_RE.finditer(text)]
        assert first == literal_starts(text, pii_context._STREET_FIRST), text
        starts += len(plain)
        firsts += len(first)
    assert starts > 3000
    assert firsts > 1000


def test_title_and_key_starts_are_the_literal_searches() -> None:
    rng = random.Random(10)
    pieces = ["Mr", "Mrs", "Ms", "M.", "Mme", "Mlle", "Miss", "Dr", "Dott", "Sig", "Smt", "Shri", "Herr",
              "Frau", "AKIA", "ASIAKIA", "AAKIA", "AIza", "A", "sk-", "sk_", "rk_", "://", "x", " ", "ghp_",
              "AGPAIDA"]  # fmt: skip
    texts = _corpus_texts() + [
        "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8))) for _ in range(8000)
    ]
    titles = keys = 0
    for text in texts:
        plain_titles = literal_starts(text, pii_context._NAME_TITLES)
        assert [m.start() for m in pii_context._NAME_TITLES_RE.finditer(text)] == plain_titles, text
        plain_keys = literal_starts(text, pii_secrets._KEY_NEEDLES)
        assert pii_secrets.key_starts(text) == plain_keys, text
        titles += len(plain_titles)
        keys += len(plain_keys)
    assert titles > 5000
    assert keys > 5000


def _idnr_body(rng: random.Random) -> str:
    while True:
        body = str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(9))
        repeated = [body.count(d) for d in set(body) if body.count(d) > 1]
        if len(repeated) == 1 and repeated[0] in {2, 3}:
            return body


def test_id_checksums_are_stdnums() -> None:
    rng = random.Random(11)
    valid = {"nir": 0, "aadhaar": 0, "idnr": 0}
    for _ in range(6000):
        shape = rng.randrange(4)
        if shape == 0:
            body = "".join(rng.choice(string.digits) for _ in range(13))
            number = body + nir.calc_check_digits(body + "00")
        elif shape == 1:
            body = "".join(rng.choice(string.digits) for _ in range(11))
            number = body + verhoeff.calc_check_digit(body)
        elif shape == 2:
            body = _idnr_body(rng)
            number = body + mod_11_10.calc_check_digit(body)
        else:
            number = "".join(rng.choice(string.digits) for _ in range(rng.choice([9, 11, 12, 13, 15])))
        # other scripts' digits, stray separators and Corsican departments go to stdnum itself
        for variant in (number, number.replace("1", "١"), f" {number}", number[:5] + "2A" + number[7:]):
            assert pii_numbers.nir_is_valid(variant) == nir.is_valid(variant), variant
            assert pii_numbers.aadhaar_is_valid(variant) == aadhaar.is_valid(variant), variant
            assert pii_numbers.idnr_is_valid(variant) == idnr.is_valid(variant), variant
        valid["nir"] += nir.is_valid(number)
        valid["aadhaar"] += aadhaar.is_valid(number)
        valid["idnr"] += idnr.is_valid(number)
    assert min(valid.values()) > 500


def test_iban_check_is_stdnums_for_spanish_accounts() -> None:
    rng = random.Random(12)
    checked = passed = 0
    for _ in range(3000):
        country = rng.choice(["ES", "ES", "ES", "DE", "FR", "NL", "GB", "BE", "NO"])
        length = {"ES": 20, "DE": 18, "FR": 23, "NL": 14, "GB": 18, "BE": 12, "NO": 11}[country]
        if country in {"NL", "GB"}:
            bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
            bban += "".join(rng.choice(string.digits) for _ in range(length - 4))
        else:
            bban = "".join(rng.choice(string.digits) for _ in range(length))
        number = country + iban.calc_check_digits(country + "00" + bban) + bban
        if rng.random() < 0.2:  # a broken check digit, sometimes
            number = number[:-1] + rng.choice(string.digits)
        assert pii_text._iban_ok(number) == iban.is_valid(number), number
        checked += 1
        passed += iban.is_valid(number)
    assert checked == 3000
    assert 100 < passed < checked  # both answers, Spanish bank check digits included


_MORE_REGIONS = ("AR", "MX", "AU", "JP", "RU", "SG", "HU", "BR", "KR")


def _runs(rng: random.Random, count: int) -> list[str]:
    runs = []
    prefixes = ["", "", "", "0", "00", "011", "1", "44", "49", "33", "91", "55", "180020", "0044", "+", "+1"]
    for _ in range(count):
        body = "".join(rng.choice(string.digits) for _ in range(rng.randint(5, 15)))
        runs.append(rng.choice(prefixes) + body)
    return runs


@pytest.mark.parametrize("seed", [13, 14])
def test_skipped_phone_plans_could_give_nothing(seed: int) -> None:
    rng = random.Random(seed)
    plans = pii_numbers.phone_plans((*DEFAULT_REGIONS, *_MORE_REGIONS))
    skipped = 0
    for run in _runs(rng, 3000):
        digits = run.lstrip("+")
        for plan in plans:
            if plan.prefixes is None or not pii_numbers._cannot_judge(digits, plan):
                continue
            skipped += 1
            key = pii_numbers.phone_key(digits, plan)
            if key is not None:
                _, is_valid, is_possible = pii_numbers.judge(*key)
                assert not is_valid, (run, plan.region)
                assert not is_possible, (run, plan.region)
    assert skipped > 5000


def test_typed_patterns_are_the_type_by_type_checks() -> None:
    rng = random.Random(15)
    checked = valid = 0
    for code in (1, 44, 49, 33, 34, 39, 31, 91, 55, 7, 61):
        for region in pii_numbers.phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]:
            rules = pii_numbers._rules(code, region)
            if rules is None:
                continue
            for _ in range(150):
                nsn = "".join(rng.choice(string.digits) for _ in range(rng.randint(4, 13)))
                expected = pii_numbers._matches(rules.general, nsn) and (
                    any(pii_numbers._matches(d, nsn) for d in rules.types)
                    or pii_numbers._matches(rules.mobile, nsn)
                )
                assert pii_numbers._valid_for(rules, nsn) == expected, (region, nsn)
                checked += 1
                valid += expected
    assert checked > 5000
    assert valid > 100


def test_ids_skipped_before_context_have_no_id() -> None:
    rng = random.Random(16)
    recognizer = pii_numbers.NumberRecognizer(entities=frozenset(Entity), regions=DEFAULT_REGIONS)
    found = 0
    for _ in range(6000):
        n = rng.choice([11, 12, 13, 15])
        digits = "".join(rng.choice(string.digits) for _ in range(n))
        shape = rng.randrange(4)
        if shape == 1 and n == 12:
            digits = digits[:11] + verhoeff.calc_check_digit(digits[:11])
        elif shape == 1 and n == 11:
            body = _idnr_body(rng)
            digits = body + mod_11_10.calc_check_digit(body)
        elif shape == 1 and n == 15:
            digits = digits[:13] + nir.calc_check_digits(digits[:13] + "00")
        runs = [
            digits,
            f"{digits[:4]} {digits[4:8]} {digits[8:]}",
            f"{digits[:3]}.{digits[3:6]}.{digits[6:9]}-{digits[9:]}",
        ]
        for run in runs:
            if pii_numbers._may_be_id(run, digits, n):
                continue
            for id_ctx in (False, True):
                for tax_ctx in (False, True):
                    for other in (False, True):
                        assert (
                            recognizer._national_or_tax(
                                run, None, run, digits, 0, id_ctx=id_ctx, tax_ctx=tax_ctx, other=other
                            )
                            is None
                        ), run
        found += pii_numbers._may_be_id(digits, digits, n)
    assert found > 1000


def test_new_match_is_the_dataclass() -> None:
    fast = new_match(Entity.IBAN, "iban", 3, 25, 0.95, True, "DE")
    plain = Match(entity=Entity.IBAN, kind="iban", start=3, end=25, score=0.95, validated=True, country="DE")
    assert type(fast) is Match
    assert fast == plain
    assert hash(fast) == hash(plain)
    assert repr(fast) == repr(plain)
    assert new_match(entity=Entity.EMAIL, kind="email", start=0, end=5, score=0.95, validated=False) == Match(
        entity=Entity.EMAIL, kind="email", start=0, end=5, score=0.95, validated=False
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.start = 4  # type: ignore[misc]


def test_run_separators_and_date_length_are_the_patterns() -> None:
    rng = random.Random(17)
    pieces = ["1", "12", "123", "2024", "+", "(", ")", " ", ".", "-", "/", "٣", "x", "  ", "+44 (0)"]
    runs = 0
    for _ in range(6000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        for m in pii_numbers.DIGIT_RUN.finditer(text):
            run = m.group()
            assert run.translate(pii_numbers._RUN_SEPARATORS) == pii_numbers._SEPARATORS.sub("", run), run
            if len(run) > pii_numbers._LONGEST_DATE:
                assert not pii_numbers.is_date(run), run
            runs += 1
    assert runs > 5000
    assert pii_numbers.is_date("1985-03-12")
    assert pii_numbers.is_date("12/03/1985")


def test_values_scanned_together_do_not_share_matches() -> None:
    from garrison.recognizers.pii import Scanner

    texts = [t for t in _corpus_texts() if SEP not in t][:400]
    scanner = Scanner()
    first = scanner.scan_many(texts)
    kept = [[dataclasses.astuple(m) for m in found] for found in first]
    second = scanner.scan_many(texts)  # the digit-run cache answers now: its copies must stay its own
    assert [[dataclasses.astuple(m) for m in found] for found in first] == kept
    assert second == first
    assert second == [scanner.scan(t) for t in texts]
    assert all(m is not n for a, b in zip(first, second, strict=True) for m, n in zip(a, b, strict=True))
    assert sum(map(len, first)) > 300
