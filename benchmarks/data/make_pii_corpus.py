"""Generate a labelled corpus of personal data and secrets for the PII benchmark and tests.

Values come from Faker in several locales (ids it gets wrong are made here with python-stdnum check
digits); they are embedded in sentence templates and in table cells (a CSV with typed columns, each
cell a record with its column name), and mixed with negative sentences full of look-alikes: order
numbers, timestamps, versions, random digit runs, UUIDs, dates that are not birth dates. Output is
JSONL, one ``{"text", "column", "spans": [{"start", "end", "entity"}]}`` per line. Deterministic for
a given ``--seed``.

    python benchmarks/data/make_pii_corpus.py --count 2000 --seed 7 --out corpus.jsonl [--csv rows.csv]
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import random
import string
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faker import Faker
from stdnum import iban, verhoeff
from stdnum.iso7064 import mod_11_10

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "en_IN", "en_CA")
Value = tuple[str, str]  # (entity, text)


def _nino(rng: random.Random) -> str:
    first = rng.choice("ABCEHJKLMNOPRSTWXYZ")
    second = rng.choice("ABCEHJKLMNPRSTWXYZ")
    digits = "".join(rng.choice(string.digits) for _ in range(6))
    return f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {rng.choice('ABCD')}"


def _aadhaar(rng: random.Random) -> str:
    body = str(rng.randint(2, 9)) + "".join(rng.choice(string.digits) for _ in range(10))
    full = body + verhoeff.calc_check_digit(body)
    return f"{full[:4]} {full[4:8]} {full[8:]}" if rng.random() < 0.5 else full


def _idnr(rng: random.Random) -> str:
    while True:
        body = str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(9))
        repeated = [body.count(d) for d in set(body) if body.count(d) > 1]
        if len(repeated) == 1 and repeated[0] in {2, 3}:  # exactly one digit repeats, as the IdNr demands
            return body + mod_11_10.calc_check_digit(body)


def _pan(rng: random.Random) -> str:
    letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(3))
    upper = string.ascii_uppercase
    return f"{letters}P{rng.choice(upper)}{rng.randint(1000, 9999)}{rng.choice(upper)}"


def national_id(fake: Faker, locale: str, rng: random.Random) -> Value | None:
    """A national id of the locale's country, or None where there is none to make."""
    if locale == "en_GB":
        return ("national-id", _nino(rng))
    if locale == "en_IN":
        return ("national-id", _aadhaar(rng))
    # Faker's provider methods, looked up by name: some exist only on some locales' providers
    method = {"en_US": "ssn", "fr_FR": "ssn", "es_ES": "nif", "it_IT": "ssn", "nl_NL": "ssn",
              "pt_BR": "cpf", "en_CA": "ssn"}.get(locale)  # fmt: skip
    return ("national-id", str(getattr(fake, method)())) if method else None


def tax_id(fake: Faker, locale: str, rng: random.Random) -> Value | None:
    if locale == "de_DE":
        return ("tax-id", _idnr(rng))
    if locale == "en_IN":
        return ("tax-id", _pan(rng))
    if locale == "en_US":
        return ("tax-id", fake.itin())
    return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def secret(rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits

    def r(n: int, alphabet: str = alnum) -> str:
        return "".join(rng.choice(alphabet) for _ in range(n))

    choices = [
        lambda: "AKIA" + r(16, string.ascii_uppercase + "234567"),
        lambda: "ghp_" + r(36),
        lambda: "xoxb-" + r(11, string.digits) + "-" + r(12, string.digits) + "-" + r(24),
        lambda: "sk_live_" + r(24),
        lambda: "AIza" + r(35, alnum + "_-"),
        lambda: "sk-proj-" + r(48, alnum + "_-"),
        lambda: "sk-ant-api03-" + r(80, alnum + "_-"),
        lambda: "hf_" + r(34),
        lambda: ".".join((_b64url(b'{"alg":"HS256","typ":"JWT"}'),
                          _b64url(json.dumps({"sub": r(8), "iat": rng.randint(1, 10**9)}).encode()),
                          r(43, alnum + "_-"))),
    ]  # fmt: skip
    return rng.choice(choices)()


SENTENCES: dict[str, tuple[str, ...]] = {
    "email": (
        "Please write to {} for details.",
        "Contact: {}",
        "My e-mail is {} if you need me.",
        "Sent from {} on Monday.",
        "cc {} — thanks!",
    ),
    "phone": (
        "Call me at {} after 5pm.",
        "Phone: {}",
        "You can reach us on {}.",
        "Tel. {}",
        "My mobile number is {}, text anytime.",
    ),
    "credit-card": (
        "Card number {} exp 04/27.",
        "I paid with my Visa {} yesterday.",
        "Please charge {} for the order.",
        "credit card: {}",
    ),
    "iban": (
        "Please transfer the amount to IBAN {}.",
        "Bank account {} (BIC on request).",
        "IBAN: {}",
        "Refunds go to {} within 5 days.",
    ),
    "national-id": (
        "My ID number is {}.",
        "National identity number: {}",
        "Her id number {} was checked.",
        "Applicant id number: {}",
    ),
    "tax-id": (
        "Tax ID {} on the invoice.",
        "Steuer-ID / tax number: {}",
        "TIN: {}",
        "Please quote your tax id {}.",
    ),
    "ip-address": (
        "Login from {} at night.",
        "The server {} is down.",
        "Blocked IP {} after 5 attempts.",
        "ping {} failed",
    ),
    "mac-address": (
        "Device MAC {} joined the network.",
        "whitelist hardware address {}",
        "The adapter {} is offline.",
    ),
    "date-of-birth": (
        "I was born on {}.",
        "Date of birth: {}",
        "DOB {} (please verify)",
        "Patient, born {}, was admitted.",
    ),
    "postal-address": ("Ship it to {}.", "My address is {}.", "Office: {}", "She moved to {} last year."),
    "person-name": (
        "My name is {}.",
        "Dear Mr. {}, thank you.",
        "Regards, {}",
        "Signed, {}",
        "{} joined the call late.",
    ),
    "secret": (
        "export API_TOKEN={}",
        "config: key = '{}'",
        "Use this token {} for the test env.",
        "Authorization: Bearer {}",
        "the key is {} — do not share",
    ),
}
NAMES_PER_ENTITY = {"person-name": "name", "postal-address": "address"}
COLUMNS = {"email": "email", "phone": "phone_number", "credit-card": "card_number", "iban": "iban",
           "national-id": "national_id", "tax-id": "tax_id", "ip-address": "last_ip",
           "mac-address": "mac", "date-of-birth": "date_of_birth", "postal-address": "street_address",
           "person-name": "full_name"}  # fmt: skip
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%B %d, %Y", "%d %B %Y")


def value_for(entity: str, fake: Faker, locale: str, rng: random.Random) -> str | None:
    """A value of ``entity`` made in ``locale``, or None if the locale has none."""
    if entity == "national-id":
        made = national_id(fake, locale, rng)
        return made[1] if made else None
    if entity == "tax-id":
        made = tax_id(fake, locale, rng)
        return made[1] if made else None
    if entity == "credit-card":
        number = fake.credit_card_number()
        if rng.random() < 0.4 and len(number) == 16:
            number = " ".join(number[i : i + 4] for i in range(0, 16, 4))
        return number
    if entity == "iban":
        number = fake.iban()
        if not iban.is_valid(number):
            return None  # Faker's en_IN makes 21-character "GB" IBANs (India has no IBAN)
        return " ".join(number[i : i + 4] for i in range(0, len(number), 4)) if rng.random() < 0.4 else number
    if entity == "date-of-birth":
        return fake.date_of_birth().strftime(rng.choice(DATE_FORMATS))
    if entity == "secret":
        return secret(rng)
    simple: dict[str, Callable[[], str]] = {
        "email": fake.email, "phone": fake.phone_number, "mac-address": fake.mac_address,
        "ip-address": lambda: fake.ipv4() if rng.random() < 0.8 else fake.ipv6(),
        "postal-address": lambda: fake.address().replace("\n", ", "), "person-name": fake.name,
    }  # fmt: skip
    return simple[entity]()


def negative(fake: Faker, rng: random.Random) -> str:
    """A sentence with look-alikes and no personal data."""
    digits = "".join(rng.choice(string.digits) for _ in range(rng.randint(8, 16)))
    templates = [
        f"Order #{digits} has shipped.",
        f"Invoice {rng.randint(10**5, 10**9)} is due on {fake.date_this_decade().isoformat()}.",
        f"Build {rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)} released at "
        f"{fake.date_time_this_decade().isoformat()}Z.",
        f"Request id {fake.uuid4()} took {rng.randint(1, 999)} ms.",
        f"Tracking number {digits} — expected {fake.date_this_year().strftime('%d/%m/%Y')}.",
        f"The meeting is on {fake.date_this_year().strftime('%B %d, %Y')} at {rng.randint(1, 12)}:30.",
        f"Version v{rng.randint(1, 20)}.{rng.randint(0, 9)}.{rng.randint(0, 9)} fixes "
        f"{rng.randint(2, 90)} bugs.",
        f"We sold {rng.randint(1000, 99999)} units in {rng.randint(1990, 2024)}, up {rng.randint(1, 99)}%.",
        f"Checksum {fake.sha256()[:40]} verified.",
        f"Serial no. {rng.randint(10**9, 10**12)} registered on {fake.date_this_decade().isoformat()}.",
        f"Room {rng.randint(100, 999)}, floor {rng.randint(1, 30)}, ticket {rng.randint(10**6, 10**8)}.",
        f"Timestamp {rng.randint(1_500_000_000, 1_800_000_000)} in epoch seconds.",
        f"{fake.sentence()}",
    ]
    return rng.choice(templates)


def make(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` labelled records (about 60% sentences with one or two values, 25% cells, 15% negatives)."""
    rng = random.Random(seed)
    fakers = {}
    for i, locale in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed * 1000 + i)
        fakers[locale] = fake
    records: list[dict[str, Any]] = []
    entities = list(SENTENCES)
    while len(records) < count:
        locale = rng.choice(LOCALES)
        fake = fakers[locale]
        roll = rng.random()
        if roll < 0.15:
            records.append({"text": negative(fake, rng), "column": None, "spans": []})
            continue
        entity = rng.choice(entities)
        value = value_for(entity, fake, locale, rng)
        if value is None:
            continue
        if roll < 0.4 and entity in COLUMNS:
            records.append({"text": value, "column": COLUMNS[entity],
                            "spans": [{"start": 0, "end": len(value), "entity": entity}]})  # fmt: skip
            continue
        template = rng.choice(SENTENCES[entity])
        prefix, _, suffix = template.partition("{}")
        text = prefix + value + suffix
        spans = [{"start": len(prefix), "end": len(prefix) + len(value), "entity": entity}]
        if rng.random() < 0.3:  # a second value in the same text
            other = rng.choice(["email", "phone", "iban", "credit-card", "ip-address"])
            extra = value_for(other, fake, locale, rng)
            if extra is not None:
                second_prefix, _, second_suffix = rng.choice(SENTENCES[other]).partition("{}")
                base = len(text) + 1
                text = f"{text} {second_prefix}{extra}{second_suffix}"
                at = base + len(second_prefix)
                spans.append({"start": at, "end": at + len(extra), "entity": other})
        records.append({"text": text, "column": None, "spans": spans})
    return records


def write_csv(records: list[dict[str, Any]], path: Path) -> None:
    """The table-cell records as a CSV of typed columns (one column per entity, rows filled in order)."""
    columns: dict[str, list[str]] = {}
    for record in records:
        if record["column"]:
            columns.setdefault(record["column"], []).append(record["text"])
    names = sorted(columns)
    rows = max((len(v) for v in columns.values()), default=0)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for i in range(rows):
            writer.writerow([columns[n][i] if i < len(columns[n]) else "" for n in names])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="JSONL path (default: stdout)")
    parser.add_argument("--csv", type=Path, default=None, help="also write the table cells as a CSV")
    args = parser.parse_args(argv)
    records = make(args.count, args.seed)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if args.out is None:
        sys.stdout.write(lines)
    else:
        args.out.write_text(lines, encoding="utf-8")
    if args.csv is not None:
        write_csv(records, args.csv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
