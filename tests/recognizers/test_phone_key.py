"""The scanner reads digit runs as phone numbers with its own short path through ``phonenumbers``'
metadata: it must give what ``phonenumbers.parse``, ``is_valid_number`` and ``is_possible_number`` give."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from faker import Faker

from garrison.recognizers.pii import DEFAULT_REGIONS
from garrison.recognizers.pii_numbers import _SEPARATORS, DIGIT_RUN, judge, phone_key, phone_plans

#: The corpus locales' phone formats, and regions with unusual national prefixes and IDDs.
_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "en_IN", "en_CA")
_MORE_REGIONS = ("AR", "MX", "AU", "JP", "RU", "CN", "SG", "HU", "CO", "KR", "IL", "XX")
_PREFIXES = ("", "", "", "0", "00", "011", "010", "0011", "8", "810", "1", "44", "49", "33", "91", "55",
             "0044", "001", "0049", "+", "+", "+1", "+44", "+0", "+49 (0)", "(0)", "+(44) ", "+800", "+7",
             "+39", "+262", "+599")  # fmt: skip


def _parsed(run: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(run, region)
    except phonenumbers.NumberParseException:
        return None


def _runs(rng: random.Random, count: int) -> list[str]:
    """Digit runs as the scanner finds them: Faker numbers of every locale, prefixed random digits."""
    texts = []
    for locale in _LOCALES:
        fake = Faker(locale)
        fake.seed_instance(rng.randrange(1 << 30))
        texts += [fake.phone_number() for _ in range(count // 40)]
    for _ in range(count):
        body = "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 15)))
        digits = rng.choice(_PREFIXES) + body
        texts.append("".join(c + (rng.choice(" -./") if rng.random() < 0.2 else "") for c in digits))
    runs = []
    for text in texts:
        for m in DIGIT_RUN.finditer(text):
            n = len(_SEPARATORS.sub("", m.group()).lstrip("+"))
            if 7 <= n <= 15:
                runs.append(m.group())
    return runs


@pytest.mark.parametrize("seed", [1, 2])
def test_phone_key_and_verdict_are_the_librarys(seed: int) -> None:
    rng = random.Random(seed)
    regions = (*DEFAULT_REGIONS, *_MORE_REGIONS)
    plans = {plan.region: plan for plan in phone_plans(regions)}
    assert "XX" not in plans  # no numbering plan: parse refuses every run without a plus
    runs = _runs(rng, 1500)
    assert len(runs) > 1000
    valid = possible = 0
    for run in runs:
        digits = _SEPARATORS.sub("", run).lstrip("+")
        for region in (None,) if run.startswith("+") else regions:
            number = _parsed(run, region)
            key = phone_key(digits, None if region is None else plans.get(region))
            if region is not None and region not in plans:
                key = None  # the plan is never tried
            if number is None:
                assert key is None, (run, region)
                continue
            assert key == (number.country_code, phonenumbers.national_significant_number(number)), (
                run,
                region,
            )
            assert key is not None
            code, is_valid, is_possible = judge(*key)
            assert is_valid == phonenumbers.is_valid_number(number), (run, region)
            assert is_possible == (is_valid or phonenumbers.is_possible_number(number)), (run, region)
            if is_possible:
                assert code == phonenumbers.region_code_for_number(number), (run, region)
            valid += is_valid
            possible += is_possible
    assert valid > 500  # both answers are exercised
    assert possible > valid


def test_runs_in_other_scripts_digits_are_parsed_by_the_library() -> None:
    from garrison.recognizers.pii_numbers import NumberRecognizer
    from garrison.recognizers.pii_types import Entity

    arabic = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    recognizer = NumberRecognizer(entities=frozenset(Entity), regions=DEFAULT_REGIONS)
    checked = 0
    for run in _runs(random.Random(3), 300):
        native = run.translate(arabic)
        expected = None
        possible = None
        for region in (None,) if native.startswith("+") else DEFAULT_REGIONS:
            number = _parsed(native, region)
            if number is None:
                continue
            if phonenumbers.is_valid_number(number):
                expected = (phonenumbers.region_code_for_number(number), True)
                break
            if possible is None and phonenumbers.is_possible_number(number):
                possible = (phonenumbers.region_code_for_number(number), False)
        assert recognizer._parse_phone(native) == (expected or possible), native
        checked += expected is not None
    assert checked > 50
