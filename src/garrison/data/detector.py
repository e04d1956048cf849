"""The data-security detector: personal data, secrets and malformed rows in dataset files."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Self

from garrison.core.evidence import Evidence, Metric, Observation
from garrison.core.findings import Finding, Location
from garrison.core.registry import DetectorOptions, FileDetector, FileTarget
from garrison.core.rules import Rule
from garrison.core.severity import Severity
from garrison.data.rules import DATA_RULES, PERSONAL_DATA, SECRET, UNREADABLE_ROWS
from garrison.recognizers.pii_types import Entity

if TYPE_CHECKING:
    from garrison.core.config import Settings
    from garrison.data.profile import ColumnFinding, DataProfile
    from garrison.recognizers.pii import Scanner

#: Personal data that identifies a person on its own or opens their accounts: reported as high.
HIGH_RISK = frozenset({Entity.CREDIT_CARD, Entity.IBAN, Entity.NATIONAL_ID, Entity.TAX_ID})

_NAMES = {
    Entity.EMAIL: "e-mail addresses",
    Entity.PHONE: "phone numbers",
    Entity.CREDIT_CARD: "payment card numbers",
    Entity.IBAN: "IBANs",
    Entity.NATIONAL_ID: "national identifiers",
    Entity.TAX_ID: "tax numbers",
    Entity.IP_ADDRESS: "IP addresses",
    Entity.MAC_ADDRESS: "MAC addresses",
    Entity.DATE_OF_BIRTH: "dates of birth",
    Entity.POSTAL_ADDRESS: "postal addresses",
    Entity.PERSON_NAME: "person names",
    Entity.SECRET: "secrets",
}


class PersonalDataOptions(DetectorOptions):
    """The detector's options."""

    recognizers: tuple[str, ...] = ()
    """Specs of plugged-in recognizers (:mod:`garrison.recognizers.pii_plugins`)."""


class PersonalDataDetector(FileDetector):
    """Streams CSV, TSV, JSON Lines, Parquet and text datasets, and the metadata of images, and reports
    personal data and secrets.

    One finding per column and kind of data (GAR-PII-001, GAR-SEC-001) with the share of rows, the
    first rows and masked examples; one finding (GAR-DATA-101) for rows that could not be read as
    they are. Memory is bounded by one batch of rows, whatever the file size.
    """

    name: ClassVar[str] = "data-pii"
    summary: ClassVar[str] = "Personal data and secrets in datasets, column by column, with masked evidence."
    rules: ClassVar[tuple[Rule, ...]] = DATA_RULES
    formats: ClassVar[frozenset[str]] = frozenset({"csv", "jsonl", "parquet", "text"})
    Options: ClassVar[type[DetectorOptions]] = PersonalDataOptions

    def __init__(self, options: DetectorOptions | None = None) -> None:
        super().__init__(options)
        self._scanner: Scanner | None = None
        specs = getattr(self.options, "recognizers", ())
        if specs:  # loaded once per scan, so a bad spec stops it before any file is read
            from garrison.recognizers.pii import Scanner
            from garrison.recognizers.pii_plugins import load_recognizers

            self._scanner = Scanner(recognizers=load_recognizers(specs))

    @classmethod
    def configured(cls, settings: Settings) -> Self:
        """With the ``pii-recognizers`` setting's plugged-in recognizers."""
        return cls(PersonalDataOptions(recognizers=settings.pii_recognizers))

    def applies_to(self, target: FileTarget) -> bool:
        """Datasets, and images (by their magic number) when Pillow is installed: their metadata."""
        from garrison.data.readers_images import pillow_available, sniff_image

        return super().applies_to(target) or (
            target.asset.format == "unknown" and sniff_image(target.head) is not None and pillow_available()
        )

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        """Findings for one dataset file (archive members are read from the engine's copy)."""
        # the recognizers (phonenumbers, python-stdnum) load only when a dataset is scanned, not at
        # start-up of every command that builds the registry
        from garrison.data.profile import profile_dataset

        profile = profile_dataset(target.path, scanner=self._scanner)
        for entry in sorted(profile.findings.values(), key=lambda f: (f.column or "", f.entity.value)):
            yield self._finding(target, profile, entry)
        if profile.problem_count:
            yield self._problems(target, profile)
        if profile.kind == "image":
            yield from self._image_identity(target)

    def _image_identity(self, target: FileTarget) -> Iterator[Finding]:
        """GAR-PII-001 for an image's GPS position, owner or device serial, whatever their text."""
        from garrison.data.readers_images import identifying_fields, read_image

        names = {
            "location": "a GPS position",
            "owner": "the owner or author",
            "device-serial": "a serial number",
        }
        for item in identifying_fields(read_image(target.path)):
            yield Finding.create(
                rule=PERSONAL_DATA,
                asset=target.asset,
                message=f"image metadata {item.field} holds {names[item.kind]} ({item.kind}): {item.masked}",
                detector=self.name,
                location=Location(member=target.member, column=item.field),
                evidence=(Observation(name="entity", actual=item.kind),),
            )

    def _finding(self, target: FileTarget, profile: DataProfile, entry: ColumnFinding) -> Finding:
        secret = entry.entity is Entity.SECRET
        what = _NAMES[entry.entity]
        kinds = ", ".join(f"{k} ({n:,})" for k, n in entry.kinds.most_common(5))
        where = f"column {entry.column!r}" if entry.column is not None else "the text"
        share = profile.share(entry)
        rows = ", ".join(f"{r:,}" for r in entry.first_rows)
        message = (
            f"{where} holds {what} in {entry.rows:,} of {profile.rows:,} rows ({share:.1%}): {kinds}; "
            f"first rows {rows}; e.g. {', '.join(entry.examples)}"
        )
        severity = None if secret else (Severity.HIGH if entry.entity in HIGH_RISK else None)
        evidence: tuple[Evidence, ...] = (
            Observation(name="entity", actual=entry.entity.value),
            Metric(name="rows", value=float(entry.rows)),
            Metric(name="share", value=round(share, 4)),
            Metric(name="validated", value=float(entry.validated)),
        )
        return Finding.create(
            rule=SECRET if secret else PERSONAL_DATA,
            asset=target.asset,
            message=message,
            detector=self.name,
            severity=severity,
            location=Location(member=target.member, column=entry.column, row=entry.first_rows[0]),
            evidence=evidence,
        )

    def _problems(self, target: FileTarget, profile: DataProfile) -> Finding:
        shown = "; ".join(
            p.message
            for p in profile.problems[:5]  # each message names its row (or file) itself
        )
        more = f" (first {min(5, profile.problem_count)} shown)" if profile.problem_count > 5 else ""
        first = next((p.row for p in profile.problems if p.row is not None), None)
        return Finding.create(
            rule=UNREADABLE_ROWS,
            asset=target.asset,
            message=f"{profile.problem_count:,} malformed rows or values{more}: {shown}",
            detector=self.name,
            location=Location(member=target.member, row=first),
            evidence=(Metric(name="problems", value=float(profile.problem_count)),),
        )


DETECTORS = (PersonalDataDetector,)
