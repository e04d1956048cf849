"""Recognizers that need context: dates of birth, person names, postal addresses, and column names.

No language model is available offline, so these favour precision: a date is a date of birth only
after a word like ``born`` / ``DOB`` / ``geboren`` or in a column named like one; a name only after a
cue (``my name is``, ``Mr.``, ``Frau``…) or in a name column; an address only with a street word
(``Street``, ``-straße``, ``rue``, ``Via``…) next to a house number, or in an address column.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from garrison.recognizers.pii_find import SEP, Shape, before_sep, literal_starts, match_at, segment
from garrison.recognizers.pii_types import Entity, Match, new_match

_MONTH = (
    r"(?:jan|feb|f[ée]v|m[äa]r|apr|avr|abr|ma[iy]|mei|mag|jun|jui|giu|jul|lug|aug|ao[uû]|ago|sep|set|"
    r"o[ck]t|ott|out|nov|de[cz]|d[ée]c|dic|ene|gen|maa)[a-zäéûçôè]*"
)
DATE_TEXT = re.compile(
    r"(?i)(?<![\w./\-])(?:\d{4}([-/.])\d{1,2}\1\d{1,2}|\d{1,2}([-/.])\d{1,2}\2\d{4}"
    rf"|\d{{1,2}}(?:st|nd|rd|th|er|º|\.)?\s(?:de\s|of\s)?{_MONTH}\.?,?\s(?:de\s)?\d{{4}}"
    rf"|{_MONTH}\.?\s\d{{1,2}}(?:st|nd|rd|th)?,?\s\d{{4}})(?![\w/\-]|\.\d)"
)
DOB_CONTEXT = re.compile(
    r"(?i)(?:\bborn\b|\bbirth|\bdob\b|d\.o\.b|geboren|geburt|\bgeb\.|\bn[ée]e?\b|naissance|nacid[oa]|"
    r"nacimiento|\bnat[oa]\b|nascita|nascid[oa]|nascimento|geboortedatum)"
)
_DOB_WINDOW = 40
#: A cheap gate kept from the first version: without one of these, no cue counts (``ne`` only as ``ne ``).
_DOB_GATE = ("born", "birth", "dob", "d.o.b", "geb", "né", "ne ", "naissance", "naci", "nat", "nasc")
#: Every match of DOB_CONTEXT starts with one of these (lower-cased) literals.
_DOB_NEEDLES = tuple((w, 0) for w in ("born", "birth", "dob", "d.o.b", "geb", "ne", "né", "naissance", "naci",
                                       "nat", "nasc"))  # fmt: skip
#: Every match of NAME_CUE starts at one of these literals, ``back`` characters before it: cue phrases
#: in the lower-cased text, titles in the text as written.
_NAME_PHRASES = (("name", 3), ("name", 0), ("heiß", 4), ("appelle", 5), ("llamo", 3), ("chiamo", 3),
                 ("naam", 5), ("nome", 4), ("signed", 0), ("regards", 0), ("sincerely", 0))  # fmt: skip
_NAME_TITLES = tuple((w, 0) for w in ("Mr", "Ms", "Mx", "Miss", "Dr", "Prof", "Herr", "Frau", "Mme", "Mlle",
                                      "Sr", "Sig", "Dott", "Dhr", "Mevr", "Shri", "Smt", "M."))  # fmt: skip
#: The titles as one pattern: each starts with a capital and holds no other, so occurrences of two
#: never overlap but at the same start, and one ``finditer`` finds every start of every title.
_NAME_TITLES_RE = re.compile(
    "|".join(re.escape(w) for w, _ in sorted(_NAME_TITLES, key=lambda t: -len(t[0])))
)
_UPPER = "A-ZÀ-ÖØ-Þ"
_LOWER = "a-zß-öø-ÿ"
_NAME_WORD = rf"[{_UPPER}][{_LOWER}'’\-]+"
_PARTICLE = r"(?:van|von|de|der|den|da|di|del|la|le|dos|das|du|ten|ter|bin|al)"
NAME_CUE = re.compile(
    r"(?:(?i:\bmy name is|\bname is|\bname\s*:|\bich heiße|\bje m'appelle|\bme llamo|\bmi chiamo|"
    r"\bmijn naam is|\bmeu nome é|\bmy name's|\bsigned,|\bregards,|\bsincerely,)\s+"
    r"|\b(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Herr|Frau|Mme|Mlle|Sr|Sra|Srta|Sig|Sig\.ra|Dott|Dhr|Mevr|Shri|Smt)"
    r"\.?\s+|\bM\.\s+)"
    rf"(?P<name>{_NAME_WORD}(?:\s+(?:{_PARTICLE}\s+)*{_NAME_WORD}){{0,3}})"
)
_STREET_EN = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Court|Ct|Place|Pl|Square|Sq|Way|"
    r"Terrace|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Crescent|Close|Mews|Row|Park|Parks|Gardens|Grove|Hill|"
    r"Hills|Trail|Plaza|Route|Crossing|Extension|Extensions|Mall|Walk|Green|Fields|Ridge|Point|Station|"
    r"Valley|View|Village|Villages|Port|Ports|Landing|Junction|Loop|Pass|Pike|Shores|Springs|Summit|"
    r"Track|Turnpike|Union|Wall|Well|Wells|Motorway|Gate|Gateway|Ferry|Ford|Forge|Fort|Harbor|Haven|"
    r"Heights|Island|Knoll|Lake|Lakes|Meadow|Meadows|Mill|Mills|Mission|Mount|Mountain|Oval|Parade|Rest|"
    r"River|Run|Spur|Stream|Squares|Throughway|Trace|Underpass|Viaduct|Vista|Estates|Expressway|Falls|"
    r"Flat|Flats|Freeway|Glen|Burg|Bypass|Camp|Canyon|Cape|Causeway|Center|Cliff|Club|Common|Corner|"
    r"Corners|Course|Cove|Creek|Crest|Dale|Dam|Divide|Field|Garden|Harbors|Inlet|Key|Keys|Light|Lock|"
    r"Lodge|Manor|Manors|Neck|Orchard|Overpass|Pine|Pines|Plains|Port|Radial|Ranch|Rapids|Shoal|Shore|"
    r"Skyway|Spring|Stravenue|Ville|Ways|Nagar|Marg|Chowk|Ganj|Path|Colony)"
)
#: Street words: ending a German or Dutch street name, before a French one's, first in Southern European ones.
_STREET_SUFFIXES = ("straße", "strasse", "str.", "weg", "gasse", "platz", "allee", "ring", "damm", "laan",
                    "straat", "plein", "gracht", "kade", "steeg", "singel", "dijk", "hof", "pad")  # fmt: skip
_FRENCH_WORDS = ("rue", "avenue", "boulevard", "bd", "chemin", "impasse", "allée", "place", "quai", "route")
_FIRST_WORDS = ("Via", "Viale", "Piazza", "Corso", "Calle", "Avenida", "Avda.", "Paseo", "Plaza", "Camino",
                "Carrer", "Ronda", "Rua", "Travessa", "Praça", "Largo", "Alameda", "Rodovia", "Acceso",
                "Callejón", "Cuesta", "Glorieta", "Pasaje", "Vía", "Vial", "Contrada", "Vicolo", "Borgo",
                "Strada", "Ladeira", "Avenue", "Rambla", "Urbanización")  # fmt: skip
_SUFFIX_ALT = "|".join(map(re.escape, _STREET_SUFFIXES))
_FIRST_ALT = "|".join(map(re.escape, _FIRST_WORDS))
ADDRESS = re.compile(
    rf"\b\d{{1,6}}[A-Za-z]?,?\s(?:{_NAME_WORD}\.?\s){{1,4}}{_STREET_EN}\b\.?"
    rf"(?:,?\s(?:Suite|Apt\.?|Unit|Flat|Floor)\s\w+)?(?:,\s[{_UPPER}][\w ]{{2,30}},?\s[A-Z]{{2}}\s\d{{5}})?"
    rf"|\b[{_UPPER}][{_LOWER}\-]*(?i:{_SUFFIX_ALT})"
    r"\s\d{1,4}[a-z]?\b(?:,?\s\d{4,5}(?:\s?[A-Z]{2})?\s\w+)?"
    rf"|\b\d{{1,4}},?\s(?i:{'|'.join(_FRENCH_WORDS)})\s[^\n,\x00]{{2,40}}"
    rf"|\b(?:{_FIRST_ALT})\s+[{_UPPER}][^\n,\d\x00]{{2,40}}?,?\s\d{{1,4}}\b"
)
#: Where an ADDRESS match can start, found without trying the pattern at every position (see
#: :func:`_address_starts`): a house number before a capitalised word (English addresses), a street word
#: ending a capitalised word before a number (``Hauptstraße 5``), a French street word after a number,
#: an Italian, Spanish or Portuguese street word.
_NUMBER_THEN_WORD = re.compile(rf"\d(?<!\w\d)\d{{0,5}}[A-Za-z]?,?\s[{_UPPER}]")
_FRENCH_STREETS = tuple(
    (word, back) for word in _FRENCH_WORDS for back in range(2, 7)
)  # ``\d{1,4},?\s`` first
_STREET_FIRST = tuple((word, 0) for word in _FIRST_WORDS)
#: The same words as one pattern: each starts with a capital and none holds another capital, so no
#: occurrence of one overlaps another's but at the same start, and one ``finditer`` finds every start.
_STREET_FIRST_RE = re.compile("|".join(map(re.escape, sorted(_FIRST_WORDS, key=len, reverse=True))))
#: The capital that ends a ``_NUMBER_THEN_WORD`` match, with a digit 2 to 4 characters before it: a
#: text has far fewer capitals than digits, and ``re`` skips to each at C speed.
_CAPITAL_AFTER_NUMBER = re.compile(
    rf"[{_UPPER}](?<=\s.)(?:(?<=\d\s.)|(?<=\d,\s.)|(?<=\d[A-Za-z]\s.)|(?<=\d[A-Za-z],\s.))"
)
_DIGIT_CHAR = re.compile(r"\d")
_SPACE_DIGIT = re.compile(r"\s\d")
_LOWER_OR_DASH = frozenset(
    [chr(c) for c in range(ord("a"), ord("z") + 1)]
    + [chr(c) for c in range(ord("ß"), ord("ö") + 1)]
    + [chr(c) for c in range(ord("ø"), ord("ÿ") + 1)]
    + ["-"]
)
_UPPER_CHARS = frozenset(
    [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    + [chr(c) for c in range(ord("À"), ord("Ö") + 1)]
    + [chr(c) for c in range(ord("Ø"), ord("Þ") + 1)]
)
#: Characters that ``re`` matches case-insensitively with an ASCII letter though ``str.lower`` keeps
#: them apart (dotless i, long s): a text with one is searched with the pattern alone.
_CASE_FOLD_ODD = re.compile("[\u0131\u017f\u1e9b\ufb05]")


def street_addresses(text: str, low: str | None) -> Iterator[re.Match[str]]:
    """``ADDRESS.finditer(text)``, tried only where a match can start; ``low`` is ``lowered(text)``."""
    if low is None or _CASE_FOLD_ODD.search(text):
        return ADDRESS.finditer(text)
    return match_at(ADDRESS, text, _address_starts(text, low))


def _address_starts(text: str, low: str) -> list[int]:
    """Every position where ADDRESS can match ``text`` (``low`` is ``text`` lower-cased), and a few more.

    Each branch of the pattern starts at something rare: a number then a capital (English street
    names), a street word (German, Dutch: at the capital that opens the word that ends with it, right
    before a space and a digit), a French street word (a house number 2 to 6 characters before it), an
    Italian, Spanish or Portuguese one. Anchored at these positions alone the pattern finds what
    ``finditer`` finds: it would fail everywhere else.
    """
    starts = set(_numbers_then_words(text))
    starts.update(literal_starts(low, _FRENCH_STREETS))
    starts.update(m.start() for m in _STREET_FIRST_RE.finditer(text))
    for suffix in _STREET_SUFFIXES:
        i = low.find(suffix)
        while i >= 0:
            if _SPACE_DIGIT.match(text, i + len(suffix)):
                q = i
                while q > 0 and text[q - 1] in _LOWER_OR_DASH:
                    q -= 1
                if q > 0 and text[q - 1] in _UPPER_CHARS:
                    starts.add(q - 1)
            i = low.find(suffix, i + 1)
    return sorted(starts)


def _numbers_then_words(text: str) -> Iterator[int]:
    """The starts of ``_NUMBER_THEN_WORD.finditer(text)``, found from the capital each match ends with.

    A match is a whole run of digits (1 to 6, not after a word character), an optional letter and
    comma, a space and a capital: so two never overlap, and each capital ends at most one, whose start
    is found by walking back from it and checked with the pattern.
    """
    digit = _DIGIT_CHAR.match
    for m in _CAPITAL_AFTER_NUMBER.finditer(text):
        p = m.start() - 2
        if text[p] == ",":
            p -= 1
        if not digit(text, p):
            p -= 1
        q = p
        while q > 0 and digit(text, q - 1):
            q -= 1
        if _NUMBER_THEN_WORD.match(text, q):
            yield q


_NAME_VALUE = re.compile(rf"[{_UPPER}{_LOWER}][{_UPPER}{_LOWER}'’.\- ]{{1,80}}")
_WORDS = re.compile(r"[a-z]+|\d+")

#: Column-name tokens and the hint each gives.
_COLUMN_HINTS: dict[str, str] = {
    **dict.fromkeys(
        (
            "dob",
            "birth",
            "birthday",
            "birthdate",
            "geburtsdatum",
            "naissance",
            "nacimiento",
            "nascita",
            "geboortedatum",
            "born",
        ),
        "dob",
    ),
    **dict.fromkeys(
        (
            "name",
            "firstname",
            "lastname",
            "surname",
            "fullname",
            "forename",
            "givenname",
            "familyname",
            "nombre",
            "nom",
            "prenom",
            "vorname",
            "nachname",
            "cognome",
            "naam",
            "apellido",
            "apellidos",
            "nome",
            "sobrenome",
        ),
        "name",
    ),
    **dict.fromkeys(
        (
            "address",
            "addr",
            "street",
            "address1",
            "address2",
            "adresse",
            "direccion",
            "indirizzo",
            "adres",
            "endereco",
            "strasse",
            "residence",
        ),
        "address",
    ),
    **dict.fromkeys(
        (
            "ssn",
            "nino",
            "bsn",
            "sin",
            "aadhaar",
            "aadhar",
            "cpf",
            "nir",
            "dni",
            "nie",
            "national",
            "passport",
            "social",
            "insee",
            "fiscal",
            "codicefiscale",
            "identity",
        ),
        "id",
    ),
    **dict.fromkeys(
        ("tax", "tin", "taxid", "steuer", "steuerid", "idnr", "ein", "itin", "pan", "vat"), "tax"
    ),
    **dict.fromkeys(
        ("phone", "tel", "telephone", "mobile", "cell", "fax", "telefon", "telefono", "handy", "msisdn"),
        "phone",
    ),
    **dict.fromkeys(("card", "cc", "creditcard", "ccnumber", "pan"), "card"),
}
_NOT_PERSONAL = frozenset({"user", "file", "company", "product", "host", "org", "organization", "domain",
                           "column", "table", "ip", "mac", "email", "mail", "web", "url", "display",
                           "brand", "city", "country", "street", "bank", "model", "app",
                           "event"})  # fmt: skip


def column_hints(column: str | None) -> frozenset[str]:
    """The hints a column name gives: ``dob``, ``name``, ``address``, ``id``, ``tax``, ``phone``, ``card``."""
    if not column:
        return frozenset()
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", column).lower()
    words = _WORDS.findall(spaced)
    joined = "".join(words)
    hints = {_COLUMN_HINTS[w] for w in (*words, joined) if w in _COLUMN_HINTS}
    if "name" in hints and _NOT_PERSONAL.intersection(words):
        hints.discard("name")
    if "address" in hints and _NOT_PERSONAL.intersection(words) - {"street"}:
        hints.discard("address")
    return frozenset(hints)


def scan_context(
    text: str, hints: frozenset[str], entities: frozenset[Entity], view: Shape
) -> Iterator[Match]:
    """Yield dates of birth, person names and postal addresses found in ``text`` (of shape ``view``)."""
    low = view.low
    if Entity.DATE_OF_BIRTH in entities:
        yield from _dates_of_birth(text, low, hints, digit=view.digit)
    if Entity.PERSON_NAME in entities:
        if "name" in hints:
            for start, value in _values(text):  # one value per line: a column's values, joined
                if _NAME_VALUE.fullmatch(value):
                    yield new_match(entity=Entity.PERSON_NAME, kind="column", start=start,
                                    end=start + len(value), score=0.85, validated=False)  # fmt: skip
        else:
            if low is None:
                cues = NAME_CUE.finditer(text)
            else:
                starts = literal_starts(low, _NAME_PHRASES) + [
                    m.start() for m in _NAME_TITLES_RE.finditer(text)
                ]
                cues = match_at(NAME_CUE, text, sorted(starts))
            for m in cues:
                yield new_match(entity=Entity.PERSON_NAME, kind="cue", start=m.start("name"),
                                end=m.end("name"), score=0.7, validated=False)  # fmt: skip
    if Entity.POSTAL_ADDRESS in entities:
        if "address" in hints:
            for start, value in _values(text):
                if any(c.isalpha() for c in value) and len(value) >= 5:
                    end = start + len(value)
                    yield new_match(entity=Entity.POSTAL_ADDRESS, kind="column", start=start, end=end,
                                score=0.85, validated=False)  # fmt: skip
        elif view.digit and view.space and view.cased:  # a number, a space and a word, at least
            for m in street_addresses(text, low):
                yield new_match(entity=Entity.POSTAL_ADDRESS, kind="street", start=m.start(), end=m.end(),
                            score=0.7, validated=False)  # fmt: skip


_VALUE = re.compile(r"[^\n\x00]+")


def _values(text: str) -> Iterator[tuple[int, str]]:
    """``(offset, value)`` of each non-blank line, stripped: the values of a column scanned together."""
    for m in _VALUE.finditer(text):
        raw = m.group()
        value = raw.strip()
        if value:
            yield m.start() + raw.index(value), value


def _dates_of_birth(text: str, low: str | None, hints: frozenset[str], *, digit: bool) -> Iterator[Match]:
    if "dob" in hints:
        for date in DATE_TEXT.finditer(text):
            yield new_match(entity=Entity.DATE_OF_BIRTH, kind="column", start=date.start(), end=date.end(),
                        score=0.9, validated=False)  # fmt: skip
        return
    if not digit:
        return  # every date has digits
    if not any(w in (text.lower() if low is None else low) for w in _DOB_GATE):
        return
    cues = (
        DOB_CONTEXT.finditer(text)
        if low is None
        else match_at(DOB_CONTEXT, text, literal_starts(low, _DOB_NEEDLES))
    )
    joined = SEP in text
    last_end = -1
    for cue in cues:
        end = cue.end()
        m = DATE_TEXT.search(text, end, before_sep(text, end, min(len(text), end + _DOB_WINDOW + 30)))
        if m is None or m.start() > end + _DOB_WINDOW or m.start() < last_end:
            continue
        if joined and not _gate_open(text, low, cue.start(), end):
            continue
        last_end = m.end()
        yield new_match(entity=Entity.DATE_OF_BIRTH, kind="context", start=m.start(), end=m.end(),
                    score=0.85, validated=False)  # fmt: skip


def _gate_open(text: str, low: str | None, start: int, end: int) -> bool:
    """Whether the value around ``text[start:end]`` (values joined by NUL) holds a :data:`_DOB_GATE` word."""
    lo, hi = segment(text, start, end)
    value = text[lo:hi].lower() if low is None else low[lo:hi]
    return any(w in value for w in _DOB_GATE)
