"""Recognizers for numbers: payment cards, national and tax ids, phone numbers, IPv4 addresses, dates.

One regex finds *digit runs* — digits joined by single separators (space, dot, dash, slash, brackets, a
leading ``+``) and not glued to letters — and each run is classified once, most specific format first:
an IPv4 address or a date is never a phone, a dashed US SSN is never a phone, a Luhn-valid card is not
an id. Checksums come from ``python-stdnum`` and phone validation from ``phonenumbers``; both run only
on candidates. A run of bare digits says little by itself, so without a helpful word nearby (``SSN``,
``BSN``, ``Aadhaar``, ``phone``…) or a telling column name it scores below the default threshold.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from functools import _lru_cache_wrapper, cache, lru_cache
from typing import NamedTuple

import phonenumbers
from phonenumbers import phonenumberutil as _pnu
from stdnum.br import cpf
from stdnum.ca import sin
from stdnum.de import idnr
from stdnum.fr import nir
from stdnum.in_ import aadhaar
from stdnum.nl import bsn
from stdnum.us import ein, itin, ssn

from garrison.recognizers.pii_find import SEP, after_sep
from garrison.recognizers.pii_types import Entity, Match, new_match

#: Digits joined by single separators; not part of a word, a version string or a longer token.
#: ``(?<![\w.\-/+@])\+?(?:\(\d{1,5}\) ?)?\d+(?:(?:[ .\-/]|\) ?| ?\()\d+)*(?!\w|[.\-/]\d)`` written so that
#: it starts with a character class (``+``, ``(`` or a digit) and checks what comes before it after
#: that: ``re`` then skips to each candidate character at C speed instead of trying the look-behind at
#: every position. Each branch continues the run the way the plain pattern does after that character;
#: the tests compare the two.
DIGIT_RUN = re.compile(
    r"[+(\d](?<![\w.\-/+@].)(?:(?<=\+)(?:\(\d{1,5}\) ?)?\d+|(?<=\()\d{1,5}\) ?\d+|(?<=\d)\d*)"
    r"(?:(?:[ .\-/]|\) ?| ?\()\d+)*(?!\w|[.\-/]\d)"
)
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_DATE = re.compile(
    r"(?P<y1>\d{4})(?P<s1>[-/.])(?P<m1>\d{1,2})(?P=s1)(?P<d1>\d{1,2})"
    r"|(?P<a>\d{1,2})(?P<s2>[-/.])(?P<b>\d{1,2})(?P=s2)(?P<y2>\d{4})"
)
_SSN_FORMAT = re.compile(r"\d{3}([- ])\d{2}\1\d{4}")
_EIN_FORMAT = re.compile(r"\d{2}-\d{7}")
_CPF_FORMAT = re.compile(r"\d{3}\.\d{3}\.\d{3}-\d{2}")
_SIN_FORMAT = re.compile(r"\d{3}([- ])\d{3}\1\d{3}")
_AADHAAR_FORMAT = re.compile(r"[2-9]\d{3}([ -])\d{4}\1\d{4}")
_CARD_FORMAT = re.compile(r"\d{12,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5}")
_SEPARATORS = re.compile(r"[^\d+]")
#: What ``_SEPARATORS.sub("", run)`` deletes from a DIGIT_RUN match, as a ``str.translate`` table.
_RUN_SEPARATORS = str.maketrans("", "", " .-/()")
#: The longest text ``is_date`` accepts (``1985-03-12``, ``12/03/1985``).
_LONGEST_DATE = 10

#: Words that, within a few characters before a value, say what it is.
ID_CONTEXT = re.compile(
    r"(?i)\b(?:ssn|social security|national (?:id|insurance)|nino|bsn|burgerservicenummer|sofi|"
    r"sin\b|social insurance|aadhaa?r|uid|cpf|nir|s[ée]curit[ée] sociale|insee|dni|nie|nif|"
    r"documento|codice fiscale|id(?:entity)? (?:number|no|card)|personal (?:id|number)|passport)"
)
TAX_CONTEXT = re.compile(
    r"(?i)(?:\btax|\btin\b|steuer|idnr|\bein\b|employer id|\bitin\b|\bpan\b|fiscal|\butr\b)"
)
PHONE_CONTEXT = re.compile(
    r"(?i)(?:phone|\btel\b|tel[ée]fono|telefon|mobile|\bcell|\bcall|\bfax|whatsapp|sms|text me|"
    r"reach (?:me|us)|contact|dial|handy|portable|cellulare|\bmob\b|ring)"
)
CARD_CONTEXT = re.compile(
    r"(?i)(?:card|visa|master|amex|american express|discover|maestro|\bcc\b|credit|debit|kreditkarte|"
    r"carte|tarjeta|carta|payment|pay with|charged)"
)
#: Words that make a number an identifier of something other than a person.
NOT_PERSONAL_CONTEXT = re.compile(
    r"(?i)(?:order|invoice|tracking|shipment|parcel|serial|\bsku\b|\bref|ticket|build|version|"
    r"\bpo\b|batch|lot\b|part|model|isbn|case|transaction|txn|request|job|run|row|page|#)"
)

_CACHE_SIZE = 1 << 15
_PHONE_CACHE_SIZE = 1 << 16
_RUN_CACHE_SIZE = 1 << 16
_UNKNOWN_RUN = new_match(entity=Entity.PHONE, kind="", start=0, end=0, score=0.0, validated=False)


def _cached(check: Callable[[str], bool]) -> _lru_cache_wrapper[bool]:
    """``check`` with its answers kept: table columns repeat values, and checksums are the hot path."""
    return lru_cache(maxsize=_CACHE_SIZE)(check)


def clear_caches() -> None:
    """Forget every checksum answer kept so far (benchmarks use it to time a scan from cold)."""
    for check in _CHECKS:
        check.cache_clear()


#: Twice a digit, its digits added (what Luhn does to every second digit from the right).
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_is_valid(number: str) -> bool:
    """``stdnum.luhn.is_valid(number)``: non-empty, ASCII digits only, and the Luhn sum a multiple of 10.

    The same answer without ``stdnum``'s generic alphabet handling (a tuple of indexes per call); the
    tests compare the two.
    """
    if not number or not number.isascii() or not number.isdigit():
        return False
    total = sum(map(int, number[-1::-2])) + sum([_DOUBLED[int(c)] for c in number[-2::-2]])
    return total % 10 == 0


#: Verhoeff's tables (the dihedral group D5 and the position permutations), as ``stdnum.verhoeff`` has them.
_D5 = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_PERMUTED = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def _ascii_digits(number: str) -> bool:
    return number.isascii() and number.isdigit()


def nir_is_valid(number: str) -> bool:
    """``stdnum.fr.nir.is_valid(number)``; for ASCII digits without ``stdnum``'s clean-up (tests compare)."""
    if not _ascii_digits(number):
        return bool(nir.is_valid(number))
    return len(number) == 15 and f"{97 - int(number[:13]) % 97:02d}" == number[13:]


def aadhaar_is_valid(number: str) -> bool:
    """``stdnum.in_.aadhaar.is_valid(number)``; for ASCII digits without ``stdnum``'s clean-up."""
    if not _ascii_digits(number):
        return bool(aadhaar.is_valid(number))
    if len(number) != 12 or number[0] in "01" or number == number[::-1]:
        return False
    check = 0
    for i, c in enumerate(reversed(number)):
        check = _D5[check][_PERMUTED[i % 8][ord(c) - 48]]
    return check == 0


def idnr_is_valid(number: str) -> bool:
    """``stdnum.de.idnr.is_valid(number)``; for ASCII digits without ``stdnum``'s clean-up."""
    if not _ascii_digits(number):
        return bool(idnr.is_valid(number))
    if len(number) != 11 or number[0] == "0":
        return False
    # exactly one digit of the first ten repeats, two or three times
    counts = [c for c in map(number[:10].count, set(number[:10])) if c > 1]
    if len(counts) != 1 or counts[0] not in (2, 3):
        return False
    check = 5
    for c in number:
        check = (((check or 10) * 2) % 11 + ord(c) - 48) % 10
    return check == 1


_luhn_ok = _cached(luhn_is_valid)
_cpf_ok = _cached(cpf.is_valid)
_sin_ok = _cached(sin.is_valid)
_idnr_ok = _cached(idnr_is_valid)
_nir_ok = _cached(nir_is_valid)
_aadhaar_ok = _cached(aadhaar_is_valid)
_bsn_ok = _cached(bsn.is_valid)
_ein_ok = _cached(ein.is_valid)
_itin_ok = _cached(itin.is_valid)
_ssn_ok = _cached(ssn.is_valid)
_CHECKS = (_luhn_ok, _cpf_ok, _sin_ok, _idnr_ok, _nir_ok, _aadhaar_ok, _bsn_ok, _ein_ok, _itin_ok, _ssn_ok)

_SSN_CONTEXT = re.compile(r"(?i)\bssn\b|social security")
_CONTEXT_WINDOW = 32
#: The context words are looked for in the 32 characters before a run; one more character decides
#: whether a word boundary opens that window. A run's verdict depends on nothing else in the text.
_WINDOW_KEY = _CONTEXT_WINDOW + 1
#: IIN prefixes of the card networks, and the lengths they issue.
_IIN: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("amex", r"3[47]", frozenset({15})),
    ("diners", r"3(?:0[0-5]|[689])", frozenset({14, 15, 16, 17, 18, 19})),
    ("jcb", r"35(?:2[89]|[3-8]\d)|2131|1800", frozenset({15, 16, 17, 18, 19})),
    ("visa", r"4", frozenset({13, 16, 19})),
    ("mastercard", r"5[1-5]|2(?:2[2-9]\d|[3-6]\d\d|7[01]\d|720)", frozenset({16})),
    ("discover", r"6(?:011|4[4-9]|5)", frozenset({16, 17, 18, 19})),
    ("unionpay", r"62", frozenset({16, 17, 18, 19})),
    ("maestro", r"5[06-9]|6\d", frozenset({12, 13, 14, 15, 16, 17, 18, 19})),
)
_IIN_RES = tuple((name, re.compile(prefix), lengths) for name, prefix, lengths in _IIN)


#: Lower-case literals of which every match of a context pattern holds at least one: when none is in
#: the window, the (case-insensitive, slow) pattern need not run.
_NEEDLES: dict[re.Pattern[str], tuple[str, ...]] = {
    ID_CONTEXT: ("ssn", "social", "national", "nino", "bsn", "burger", "sofi", "sin", "aadha", "uid", "cpf",
                 "nir", "insee", "dni", "nie", "nif", "documento", "codice", "id number", "id no", "id card",
                 "identity ", "personal ", "passport"),
    TAX_CONTEXT: ("tax", "tin", "steuer", "idnr", "ein", "employer", "pan", "fiscal", "utr"),
    PHONE_CONTEXT: ("phone", "tel", "mobile", "cell", "call", "fax", "whatsapp", "sms", "text me", "reach ",
                    "contact", "dial", "handy", "portable", "mob", "ring"),
    CARD_CONTEXT: ("card", "visa", "master", "amex", "american express", "discover", "maestro", "cc",
                   "credit", "debit", "kreditkarte", "carte", "tarjeta", "carta", "payment", "pay with",
                   "charged"),
    NOT_PERSONAL_CONTEXT: ("order", "invoice", "tracking", "shipment", "parcel", "serial", "sku", "ref",
                           "ticket", "build", "version", "po", "batch", "lot", "part", "model", "isbn",
                           "case", "transaction", "txn", "request", "job", "run", "row", "page", "#"),
    _SSN_CONTEXT: ("ssn", "social security"),
}  # fmt: skip
#: The same literals as one regex each: one pass over the window instead of one per literal.
_NEEDLE_RES = {pattern: re.compile("|".join(map(re.escape, words))) for pattern, words in _NEEDLES.items()}


def near(
    pattern: re.Pattern[str], text: str, start: int, window: int = _CONTEXT_WINDOW, low: str | None = None
) -> bool:
    """Whether ``pattern`` occurs in the ``window`` characters before ``start`` (not across a NUL).

    ``low`` is ``text`` lower-cased with the same offsets (:func:`~garrison.recognizers.pii_find.lowered`):
    with it, a window that holds none of the pattern's literals is answered without the regex.
    """
    lo = start - window if start > window else 0
    cut = text.rfind(SEP, lo, start)  # after_sep, inline: this runs for most digit runs
    if cut >= 0:
        lo = cut + 1
    if low is not None:
        needles = _NEEDLE_RES.get(pattern)
        if needles is not None and needles.search(low, lo, start) is None:
            return False
    return pattern.search(text, lo, start) is not None


def card_network(digits: str) -> str | None:
    """The card network whose IIN range and length fit ``digits``, or None."""
    for name, prefix, lengths in _IIN_RES:
        if len(digits) in lengths and prefix.match(digits):
            return name
    return None


def is_date(run: str) -> bool:
    """Whether ``run`` is a calendar date: ``1985-03-12``, ``12/03/1985``, ``12.3.1985``…"""
    m = _DATE.fullmatch(run)
    if m is None:
        return False
    if m["y1"]:
        year, first, second = int(m["y1"]), int(m["m1"]), int(m["d1"])
        return 1 <= first <= 12 and 1 <= second <= 31 and 1850 <= year <= 2100
    year, first, second = int(m["y2"]), int(m["a"]), int(m["b"])
    day_first = 1 <= first <= 31 and 1 <= second <= 12
    month_first = 1 <= first <= 12 and 1 <= second <= 31
    return (day_first or month_first) and 1850 <= year <= 2100


_UNSEEN: tuple[str | None, bool] = ("", False)
#: Digit counts that some national or tax id has: only these need the id and tax context words.
_ID_LENGTHS = frozenset({9, 11, 12, 13, 15})


def _may_be_id(run: str, digits: str, n: int) -> bool:
    """Whether ``_national_or_tax`` may find an id of 11 to 15 digits in ``run``: its checksums, first.

    Each of those ids needs a checksum to pass before any context word counts, so a run whose checksums
    all fail skips the context look-ups (the answers are kept, and asked again only for the ids found).
    """
    if n == 11:
        cpf = (_CPF_FORMAT.fullmatch(run) is not None or run.isdigit()) and _cpf_ok(digits)
        return cpf or (run.isdigit() and _idnr_ok(digits))
    if n == 12:
        return bool((run.isdigit() or _AADHAAR_FORMAT.fullmatch(run)) and _aadhaar_ok(digits))
    return _nir_ok(digits)


def _phone_score(*, valid: bool, plus: bool, bare: bool, context: bool, other: bool) -> float:
    """The score of a phone number: validity, a plus sign, separators and the words before it count."""
    score = 0.8 if plus else (0.45 if bare else 0.7)
    if not valid:  # a possible number of no assigned range: only with a plus sign or a phone word
        score = 0.6 if plus or (context and not bare) else 0.0
    if context:
        score += 0.25 if bare else 0.15
    elif other:
        score -= 0.4
    return min(score, 0.99)


def _best_phone_score(*, plus: bool, bare: bool, context: bool, other: bool) -> float:
    """The highest score :func:`_phone_score` can give, valid or not: below the threshold, skip parsing."""
    return max(
        _phone_score(valid=True, plus=plus, bare=bare, context=context, other=other),
        _phone_score(valid=False, plus=plus, bare=bare, context=context, other=other),
    )


def _shifted(match: Match, by: int) -> Match:
    return new_match(match.entity, match.kind, match.start + by, match.end + by, match.score, match.validated,
                     match.country)  # fmt: skip


class NumberRecognizer:
    """Classifies digit runs; built once per :class:`~garrison.recognizers.pii.Scanner`."""

    __slots__ = ("_entities", "_min_score", "_numbers", "_once", "_phones", "_plans", "_regions", "_runs")

    def __init__(
        self, *, entities: frozenset[Entity], regions: Sequence[str], min_score: float = 0.0
    ) -> None:
        self._entities = entities
        self._regions = tuple(regions)
        self._plans = phone_plans(self._regions)
        self._min_score = min_score
        self._phones: dict[str, tuple[str | None, bool] | None] = {}
        self._numbers: dict[tuple[int, str], tuple[str | None, bool, bool]] = {}
        self._runs: dict[tuple[str, str, frozenset[str]], Match | None] = {}
        self._once: set[str] = set()
        # phonenumbers compiles its metadata patterns on use and leans on the ``re`` module's cache,
        # which the scanner's own patterns crowd out: keep them (a few thousand, once per process)
        phonenumbers.enable_pattern_cache()

    def scan(self, text: str, hints: frozenset[str], low: str | None) -> Iterator[Match]:
        """Yield the matches among the digit runs of ``text``; ``hints`` come from the column name.

        ``low`` is :func:`~garrison.recognizers.pii_find.lowered` of ``text``, computed once per scan.
        """
        seen, once = self._runs, self._once
        for m in DIGIT_RUN.finditer(text):
            run = m.group()
            if len(run) < 7:
                continue
            start = m.start()
            if run not in once:  # a first sighting: nothing to look up, and most runs are never seen again
                if len(once) >= _RUN_CACHE_SIZE:
                    once.clear()
                once.add(run)
                match = self._classify(text, low, run, start, hints)
                if match is not None:
                    yield match
                continue
            # the verdict depends on the run, the words before it and the column alone: a column's
            # repeated values (and the same number after the same words) are classified once
            key = (run, text[after_sep(text, max(0, start - _WINDOW_KEY), start) : start], hints)
            known = seen.get(key, _UNKNOWN_RUN)
            if known is _UNKNOWN_RUN:
                match = self._classify(text, low, run, start, hints)
                if len(seen) >= _RUN_CACHE_SIZE:
                    seen.clear()
                seen[key] = None if match is None else _shifted(match, -start)
            elif known is not None:
                yield _shifted(known, start)
                continue
            else:
                continue
            if match is not None:
                yield match

    def _id(
        self, entity: Entity, kind: str, country: str, start: int, run: str, score: float
    ) -> Match | None:
        if entity not in self._entities or country not in self._regions:
            return None
        return new_match(
            entity=entity,
            kind=kind,
            start=start,
            end=start + len(run),
            score=min(score, 0.99),
            validated=True,
            country=country,
        )

    def _classify(
        self, text: str, low: str | None, run: str, start: int, hints: frozenset[str]
    ) -> Match | None:
        bare = run.isdigit()  # no separator: not an address, a date or a formatted id
        if not bare and _IPV4.fullmatch(run):
            if Entity.IP_ADDRESS in self._entities and all(int(part) <= 255 for part in run.split(".")):
                return new_match(
                    entity=Entity.IP_ADDRESS, kind="ipv4", start=start, end=start + len(run),
                    score=0.9, validated=True,
                )  # fmt: skip
            return None
        if not bare and len(run) <= _LONGEST_DATE and is_date(run):
            return None  # dates are the date-of-birth recognizer's, and only in context
        # a digit run holds digits and the characters DIGIT_RUN joins them with: drop those
        digits = run if bare else run.translate(_RUN_SEPARATORS).lstrip("+")
        n = len(digits)
        other: bool | None = None  # the context words are looked up only when a branch needs them
        if n in _ID_LENGTHS and (n == 9 or _may_be_id(run, digits, n)):
            id_ctx = "id" in hints or near(ID_CONTEXT, text, start, low=low)
            tax_ctx = "tax" in hints or near(TAX_CONTEXT, text, start, low=low)
            other = near(NOT_PERSONAL_CONTEXT, text, start, 16, low)
            found = self._national_or_tax(
                text, low, run, digits, start, id_ctx=id_ctx, tax_ctx=tax_ctx, other=other
            )
            if found is not None:
                return found
        if not bare and (_SSN_FORMAT.fullmatch(run) or _CPF_FORMAT.fullmatch(run)):
            return None  # an id's format with a bad checksum is not a phone either
        if 12 <= n <= 19 and _CARD_FORMAT.fullmatch(run) and _luhn_ok(digits):
            network = card_network(digits)
            score = 0.9 if network else 0.55
            if "card" in hints or near(CARD_CONTEXT, text, start, low=low):
                score += 0.09
            elif other if other is not None else near(NOT_PERSONAL_CONTEXT, text, start, 16, low):
                score -= 0.5
            if Entity.CREDIT_CARD in self._entities:
                return new_match(
                    entity=Entity.CREDIT_CARD, kind=network or "card", start=start,
                    end=start + len(run), score=score, validated=True,
                )  # fmt: skip
            return None
        if 7 <= n <= 15 and Entity.PHONE in self._entities:
            return self._phone(text, low, run, start, hints, other=other)
        return None

    def _national_or_tax(
        self,
        text: str,
        low: str | None,
        run: str,
        digits: str,
        start: int,
        *,
        id_ctx: bool,
        tax_ctx: bool,
        other: bool,
    ) -> Match | None:
        n = len(digits)
        boost = 0.3 if id_ctx else (-0.3 if other else 0.0)
        if n == 9:
            # a bare SSN needs the word SSN, or an id column; another id word (BSN, SIN) is not enough
            ssn_word = near(_SSN_CONTEXT, text, start, low=low) or (
                id_ctx and not near(ID_CONTEXT, text, start, low=low)
            )
            if run.isdigit() and id_ctx and not ssn_word and _bsn_ok(digits):
                return self._id(Entity.NATIONAL_ID, "nl-bsn", "NL", start, run, 0.45 + boost)
            if _SSN_FORMAT.fullmatch(run) or (ssn_word and run.isdigit()):
                if _itin_ok(digits):
                    return self._id(Entity.TAX_ID, "us-itin", "US", start, run, 0.85 + boost)
                if _ssn_ok(digits):
                    return self._id(Entity.NATIONAL_ID, "us-ssn", "US", start, run, 0.65 + boost)
            if _EIN_FORMAT.fullmatch(run) and tax_ctx and _ein_ok(digits):
                return self._id(Entity.TAX_ID, "us-ein", "US", start, run, 0.85)
            if _SIN_FORMAT.fullmatch(run) and _sin_ok(digits):
                return self._id(Entity.NATIONAL_ID, "ca-sin", "CA", start, run, 0.6 + boost)
            if (run.isdigit() or run.count(".") == 2) and _bsn_ok(digits):
                return self._id(Entity.NATIONAL_ID, "nl-bsn", "NL", start, run, 0.45 + boost)
        elif n == 11:
            if _CPF_FORMAT.fullmatch(run) and _cpf_ok(digits):
                return self._id(Entity.NATIONAL_ID, "br-cpf", "BR", start, run, 0.9)
            if run.isdigit() and tax_ctx and _idnr_ok(digits):
                return self._id(Entity.TAX_ID, "de-idnr", "DE", start, run, 0.9)
            if run.isdigit() and id_ctx and _cpf_ok(digits):
                return self._id(Entity.NATIONAL_ID, "br-cpf", "BR", start, run, 0.8)
            if run.isdigit() and _idnr_ok(digits) and not other and "DE" in self._regions:
                return self._id(Entity.TAX_ID, "de-idnr", "DE", start, run, 0.45 + (0.3 if id_ctx else 0))
        elif n == 12:
            formatted = _AADHAAR_FORMAT.fullmatch(run) is not None
            if (formatted or run.isdigit()) and _aadhaar_ok(digits):
                network = card_network(digits) if _luhn_ok(digits) else None
                if id_ctx or (network is None and formatted):
                    return self._id(Entity.NATIONAL_ID, "in-aadhaar", "IN", start, run, 0.6 + boost)
                if network is None:
                    return self._id(Entity.NATIONAL_ID, "in-aadhaar", "IN", start, run, 0.45 + boost)
        elif n in {13, 15} and _nir_ok(digits):
            return self._id(Entity.NATIONAL_ID, "fr-nir", "FR", start, run, 0.75 + boost)
        return None

    def _phone(
        self, text: str, low: str | None, run: str, start: int, hints: frozenset[str], *, other: bool | None
    ) -> Match | None:
        bare = run.isdigit()
        context = "phone" in hints or near(PHONE_CONTEXT, text, start, low=low)
        if bare and not context and len(run) > 11:
            return None
        if context:
            other = False  # not looked at: a phone word outweighs an order number's
        elif other is None:
            other = near(NOT_PERSONAL_CONTEXT, text, start, 16, low)
        plus = run.startswith("+")
        if _best_phone_score(plus=plus, bare=bare, context=context, other=other) < self._min_score:
            return None  # whatever phonenumbers says, the score would be below the threshold
        parsed = self._phones.get(run, _UNSEEN)
        if parsed is _UNSEEN:
            parsed = self._parse_phone(run)
            if len(self._phones) >= _PHONE_CACHE_SIZE:
                self._phones.clear()
            self._phones[run] = parsed
        if parsed is None:
            return None
        country, valid = parsed
        score = _phone_score(valid=valid, plus=plus, bare=bare, context=context, other=other)
        return new_match(
            entity=Entity.PHONE, kind="phone", start=start, end=start + len(run), score=score,
            validated=valid, country=country,
        )  # fmt: skip

    def _parse_phone(self, run: str) -> tuple[str | None, bool] | None:
        """The region of the number ``run`` spells and whether it is valid (else merely possible), or None.

        The first region (in the scanner's order) where ``run`` parses to a valid number wins, else the
        first where it is a possible one. Validity and possibility depend on the parsed number alone
        (country code and national number), which several regions often share (US and CA, any number
        written with an international prefix): each such number is checked once, here and across runs.
        """
        digits = _SEPARATORS.sub("", run).lstrip("+")
        plans: Sequence[_Plan | None] = (None,) if run.startswith("+") else self._plans
        # other scripts' digits: phonenumbers reads them with its own table, so let it parse them
        fast = digits.isascii()
        possible: str | bool | None = False
        seen: set[tuple[int, str]] = set()
        for plan in plans:
            if fast and plan is not None and plan.prefixes is not None and _cannot_judge(digits, plan):
                continue
            key = phone_key(digits, plan) if fast else _parsed_key(run, None if plan is None else plan.region)
            if key is None or key in seen:
                continue
            seen.add(key)
            verdict = self._numbers.get(key)
            if verdict is None:
                verdict = judge(*key)
                if len(self._numbers) >= _PHONE_CACHE_SIZE:
                    self._numbers.clear()
                self._numbers[key] = verdict
            code, valid, is_possible = verdict
            if valid:
                return code, True
            if possible is False and is_possible:
                possible = code
        return None if possible is False else (possible, False)  # type: ignore[return-value]


class _Plan(NamedTuple):
    """What ``phonenumbers.parse`` reads of a default region: fixed per region, looked up once."""

    region: str
    """The region code."""
    metadata: phonenumbers.PhoneMetadata
    """Its numbering plan."""
    code: int
    """Its country calling code."""
    code_str: str
    """The same, as digits."""
    idd: re.Pattern[str] | None
    """Its international dialling prefix (``00``, ``011``…), if it has one."""
    prefixes: tuple[str, ...] | None
    """Its national prefixes (``0``, ``1``…) when they are plain digits that ``parse`` strips without
    rewriting the rest, else None (then :func:`_cannot_judge` does not apply)."""
    lengths: frozenset[int] | None
    """:func:`_nsn_lengths` of its country calling code."""


_LITERAL_PREFIXES = re.compile(r"\d+(?:\|\d+)*")


def _plain_prefixes(metadata: phonenumbers.PhoneMetadata) -> tuple[str, ...] | None:
    """The national prefixes ``parse`` may strip for ``metadata``, when each is a plain digit string."""
    pattern = metadata.national_prefix_for_parsing
    if not pattern:
        return ()
    if metadata.national_prefix_transform_rule or not _LITERAL_PREFIXES.fullmatch(pattern):
        return None
    return tuple(pattern.split("|"))


def _cannot_judge(digits: str, plan: _Plan) -> bool:
    """Whether ``phone_key(digits, plan)`` is sure to give no key that :func:`judge` finds possible.

    Without an international prefix or the plan's own country code in front, the key is the plan's
    country code and ``digits``, or ``digits`` less one national prefix it starts with: when no such
    length is one the country code allows, ``judge`` answers "neither valid nor possible" (or there is
    no key at all), so the plan is skipped. The tests compare with the full path.
    """
    lengths = plan.lengths
    if (
        lengths is None
        or digits.startswith(plan.code_str)
        or (plan.idd is not None and plan.idd.match(digits))
    ):
        return False
    n = len(digits)
    if n in lengths:
        return False
    return not any(n - len(p) in lengths and digits.startswith(p) for p in plan.prefixes or ())


def phone_plans(regions: Sequence[str]) -> tuple[_Plan, ...]:
    """The :class:`_Plan` of each region ``phonenumbers`` knows, in order (``parse`` refuses the others)."""
    plans = []
    for region in regions:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None or metadata.country_code is None:
            continue
        idd = None if metadata.international_prefix is None else re.compile(metadata.international_prefix)
        code = metadata.country_code
        plans.append(
            _Plan(
                region.upper(), metadata, code, str(code), idd, _plain_prefixes(metadata), _nsn_lengths(code)
            )
        )
    return tuple(plans)


def _parsed_key(run: str, region: str | None) -> tuple[int, str] | None:
    """``(country code, national significant number)`` of ``phonenumbers.parse(run, region)``, or None."""
    try:
        number = phonenumbers.parse(run, region)
    except phonenumbers.NumberParseException:
        return None
    return number.country_code or 0, phonenumbers.national_significant_number(number)


_NSN_MIN, _NSN_MAX = 2, 17
#: Length verdicts after which ``parse`` keeps a national prefix rather than strip it.
_KEEP_PREFIX = frozenset(
    {
        _pnu.ValidationResult.TOO_SHORT,
        _pnu.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
        _pnu.ValidationResult.INVALID_LENGTH,
    }
)


def phone_key(digits: str, plan: _Plan | None) -> tuple[int, str] | None:
    """``(country code, national significant number)`` of ``phonenumbers.parse(run, region)``, or None
    where it raises.

    ``digits`` are the ASCII digits of a digit run (digits and the separators ``DIGIT_RUN`` allows,
    at most one leading ``+``), ``plan`` the region's :class:`_Plan`, or None for a run that starts
    with ``+`` (parsed without a region). For such input ``parse``'s generic steps do nothing (no
    letters to convert, no extension, no RFC 3966 parameters, always viable with 3 digits or more):
    what is left is the same country-code and national-prefix logic, run here on the digits with the
    library's own helpers, without the per-character normalisation that dominates ``parse``'s time.
    The tests compare the two on many generated runs.
    """
    if plan is None:
        if len(digits) <= 2:
            return None
        code, national = _pnu._extract_country_code(digits)
        if code == 0:
            return None
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            code, phonenumbers.region_code_for_country_code(code)
        )
    else:
        metadata = plan.metadata
        m = None if plan.idd is None else plan.idd.match(digits)
        if m is not None and digits[m.end() : m.end() + 1] != "0":
            after = digits[m.end() :]
            if len(after) <= 2:
                return None
            code, national = _pnu._extract_country_code(after)
            if code == 0:
                return None
        else:
            code, national = 0, digits
            if digits.startswith(plan.code_str):
                general = metadata.general_desc
                _, stripped, _ = _pnu._maybe_strip_national_prefix_carrier_code(
                    digits[len(plan.code_str) :], metadata
                )
                if (
                    not _pnu._match_national_number(digits, general, False)
                    and _pnu._match_national_number(stripped, general, False)
                ) or _pnu._test_number_length(digits, metadata) == _pnu.ValidationResult.TOO_LONG:
                    code, national = plan.code, stripped
        if code == 0:
            code = plan.code
        else:
            region = phonenumbers.region_code_for_country_code(code)
            if region != plan.region:
                metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    if metadata is None or len(national) < _NSN_MIN:
        return None
    _, stripped, _ = _pnu._maybe_strip_national_prefix_carrier_code(national, metadata)
    if _pnu._test_number_length(stripped, metadata) not in _KEEP_PREFIX:
        national = stripped
    if not _NSN_MIN <= len(national) <= _NSN_MAX:
        return None
    return code, national


def judge(code: int, nsn: str) -> tuple[str | None, bool, bool]:
    """The region of the number ``+code nsn``, whether it is valid and whether it is possible.

    What ``region_code_for_number``, ``is_valid_number`` and ``is_possible_number`` answer for it, with
    each region's number patterns compiled and looked up once (:func:`_rules`) and the region search
    not repeated for validity. A length that no region of the country code allows is neither valid nor
    possible: that is answered without the region search, which for a shared code such as +1 tries two
    dozen regions. The tests compare the answers with the library's own.
    """
    lengths = _nsn_lengths(code)
    if lengths is not None and len(nsn) not in lengths:
        return None, False, False
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
    if regions is None:
        return None, False, False
    region: str | None = None
    valid = False
    if len(regions) == 1:
        region = regions[0]
        rules = _rules(code, region)
        valid = rules is not None and _valid_for(rules, nsn)
    else:
        for candidate, rules in _searched(code):
            if rules.leading is not None:
                if rules.leading.match(nsn):
                    region, valid = candidate, _valid_for(rules, nsn)
                    break
            elif _valid_for(rules, nsn):
                region, valid = candidate, True
                break
    if valid:
        return region, True, True
    return region, False, _possible(code, nsn)


_Desc = tuple[frozenset[int], re.Pattern[str] | None] | None


class _Rules(NamedTuple):
    """The patterns of one region's numbering plan that decide validity."""

    geographic: bool
    """Whether the region has metadata of its own (``metadata_for_region``): the search skips the others."""
    leading: re.Pattern[str] | None
    """The leading digits that pick the region among those sharing a country code, if set."""
    general: _Desc
    """The general description: every valid number matches it."""
    types: tuple[_Desc, ...]
    """Premium rate, toll free, shared cost, VoIP, personal, pager, UAN, voicemail and fixed line."""
    mobile: _Desc
    """Mobile, or None where its pattern is the fixed line's (the library does not look at it then)."""
    typed: dict[int, re.Pattern[str] | None]
    """By length of the national number, the :func:`_typed` pattern, filled as lengths are met."""


def _desc(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc:
    if desc is None:
        return None
    pattern = desc.national_number_pattern
    return frozenset(desc.possible_length or ()), re.compile(pattern) if pattern else None


def _matches(desc: _Desc, nsn: str) -> bool:
    """``_is_number_matching_desc``: the lengths, when set, then the whole-number pattern."""
    if desc is None:
        return False
    lengths, pattern = desc
    if lengths and len(nsn) not in lengths:
        return False
    return pattern is not None and pattern.fullmatch(nsn) is not None


@cache
def _rules(code: int, region: str) -> _Rules | None:
    """The :class:`_Rules` of ``region`` (under ``code``), or None where it has no metadata."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, region.upper())
    if metadata is None:
        return None
    own = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None) is not None
    if region != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY and metadata.country_code != code:
        return None
    return _Rules(
        geographic=own,
        leading=re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None,
        general=_desc(metadata.general_desc),
        types=tuple(
            _desc(d)
            for d in (
                metadata.premium_rate,
                metadata.toll_free,
                metadata.shared_cost,
                metadata.voip,
                metadata.personal_number,
                metadata.pager,
                metadata.uan,
                metadata.voicemail,
                metadata.fixed_line,
            )
        ),
        mobile=None if metadata.same_mobile_and_fixed_line_pattern else _desc(metadata.mobile),
        typed={},
    )


@cache
def _searched(code: int) -> tuple[tuple[str, _Rules], ...]:
    """The regions :func:`judge` searches for a number under ``code``: with rules, of their own, in order."""
    found = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ()):
        rules = _rules(code, region)
        if rules is not None and rules.geographic:
            found.append((region, rules))
    return tuple(found)


def _valid_for(rules: _Rules, nsn: str) -> bool:
    """Whether the library gives ``nsn`` a number type other than UNKNOWN under ``rules``.

    ``_matches(general) and any(_matches(desc) for desc in (*types, mobile))``, with the descriptions
    that allow ``nsn``'s length joined into one pattern (:func:`_typed`): one ``fullmatch`` instead of
    one call per number type. The tests compare the two.
    """
    if not _matches(rules.general, nsn):
        return False
    n = len(nsn)
    typed = rules.typed
    if n in typed:
        pattern = typed[n]
    else:
        pattern = typed[n] = _typed(rules, n)
    return pattern is not None and pattern.fullmatch(nsn) is not None


def _typed(rules: _Rules, length: int) -> re.Pattern[str] | None:
    """The patterns of ``rules``' number types (and mobile) that allow ``length``, as one alternation."""
    patterns = []
    for desc in (*rules.types, rules.mobile):
        if desc is None:
            continue
        lengths, pattern = desc
        if pattern is not None and (not lengths or length in lengths):
            patterns.append(f"(?:{pattern.pattern})")
    return re.compile("|".join(patterns)) if patterns else None


_POSSIBLE = frozenset({_pnu.ValidationResult.IS_POSSIBLE, _pnu.ValidationResult.IS_POSSIBLE_LOCAL_ONLY})


def _possible(code: int, nsn: str) -> bool:
    """``is_possible_number``: the length against the main region of the country code."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        code, phonenumbers.region_code_for_country_code(code)
    )
    return metadata is not None and _pnu._test_number_length(nsn, metadata) in _POSSIBLE


@cache
def _nsn_lengths(country_code: int) -> frozenset[int] | None:
    """Every national-number length that can be valid or possible under ``country_code``.

    A valid number matches the general description of its region, lengths included; a possible one
    has a length (or a local-only length) of the code's main region. None where some region sets no
    lengths (any length may then match), and the empty set for a code no region uses.
    """
    lengths: set[int] = set()
    main = phonenumbers.region_code_for_country_code(country_code)
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
        if metadata is None:
            continue
        desc = metadata.general_desc
        if desc is None or not desc.possible_length:
            return None
        lengths.update(desc.possible_length)
        if region == main:
            lengths.update(desc.possible_length_local_only or ())
    return frozenset(lengths)
