"""Rules raised on datasets: personal data, secrets, and rows that could not be read."""

from __future__ import annotations

from garrison.core.rules import Rule
from garrison.core.severity import Severity

_PRIVACY = (
    "NIST-AI-RMF:MEASURE-2.10",
    "NIST-AI-RMF:MAP-4.1",
    "ISO-42001:A.7.4",
    "ISO-42001:A.7.5",
    "EU-AI-Act:Art-10",
)

PERSONAL_DATA = Rule(
    id="GAR-PII-001",
    name="personal-data-in-dataset",
    title="Dataset holds personal data",
    severity=Severity.MEDIUM,
    description=(
        "Values in the dataset are personal data: e-mail addresses, phone numbers, payment card "
        "numbers, IBANs, national identifiers or tax numbers (checksums validated), IP or MAC "
        "addresses, dates of birth, postal addresses or names recognised by their column or the "
        "words around them. A model trained on them can memorise and repeat them, and anyone "
        "who can read the dataset can read them. Payment cards, bank accounts and government "
        "identifiers are reported as high severity; the finding names the column and the share of "
        "rows that hold the data, with masked examples."
    ),
    remediation=(
        "Remove the columns the model does not need, or replace the values with `garrison data "
        "redact` (mask, drop, keyed-hash pseudonyms that keep joins working, or fake values). Record "
        "the legal basis for any personal data that must stay."
    ),
    cwe=("CWE-359", "CWE-200"),
    owasp_ml=("ML03", "ML04"),
    owasp_llm=("LLM02",),
    atlas=("AML.T0057",),
    controls=_PRIVACY,
    example="data/customers.csv column email: e-mail addresses in 998 of 1,000 rows (99.8%)",
    tags=("data", "privacy"),
)

SECRET = Rule(
    id="GAR-SEC-001",
    name="secret-in-dataset",
    title="Dataset holds a credential or secret",
    severity=Severity.HIGH,
    description=(
        "A value in the dataset is a credential: a cloud or AI-provider API key, a source-control or "
        "chat token, a private key, a JSON Web Token, a database URL with its password, or a "
        "high-entropy string next to a word like key, token or password. Training data is copied, "
        "shared and memorised by models; a secret in it leaks to everyone downstream."
    ),
    remediation=(
        "Revoke and rotate the credential first (assume it is compromised), then remove it from the "
        "dataset and every copy, and find the pipeline that let it in."
    ),
    cwe=("CWE-798", "CWE-312"),
    owasp_ml=("ML03",),
    owasp_llm=("LLM02",),
    atlas=("AML.T0057",),
    controls=(*_PRIVACY, "NIST-SSDF:PS.1.1"),
    example="logs/train.jsonl column request.headers.authorization: AWS access key in 3 rows",
    tags=("data", "secrets"),
)

UNREADABLE_ROWS = Rule(
    id="GAR-DATA-101",
    name="malformed-dataset-rows",
    title="Rows of the dataset could not be read as they are",
    severity=Severity.LOW,
    description=(
        "Some rows are malformed: the wrong number of fields, a line longer than the reader's "
        "bound, text that is not valid UTF-8, a JSON line that does not parse, a Parquet row group "
        "that cannot be decoded. The rest of the file was scanned; these rows were read as far as "
        "possible or skipped, so they were checked less thoroughly. Malformed rows are also where "
        "parsers disagree, which attackers use to hide records from one tool and not another."
    ),
    remediation=(
        "Fix the export that wrote the file, or validate it against a declared schema before "
        "training; the finding lists the first rows affected."
    ),
    cwe=("CWE-20",),
    owasp_ml=("ML02",),
    controls=("ISO-42001:A.7.4", "EU-AI-Act:Art-10"),
    example="data/train.csv: 12 malformed rows (row 1,044: 5 fields, expected 4)",
    tags=("data", "quality"),
)

DATA_RULES: tuple[Rule, ...] = (PERSONAL_DATA, SECRET, UNREADABLE_ROWS)
"""Every rule of the data scanner."""
