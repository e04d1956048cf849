"""Settings: one typed object, built at the entry point and passed down.

Precedence, lowest first:

1. built-in defaults;
2. the configuration file: ``garrison.toml``, or ``[tool.garrison]`` in ``pyproject.toml``, found in
   the working directory or the nearest parent that has one (``garrison.toml`` wins when a
   directory has both), or named with ``--config``;
3. ``GARRISON_<SETTING>`` environment variables (lists are comma-separated);
4. command-line flags.

Keys are written in kebab-case in files (``fail-on``) and upper snake case in the environment
(``GARRISON_FAIL_ON``). The settings of one command may be grouped in a table named by their prefix:
``[bias]`` with ``min-dp-ratio = 0.9`` sets ``bias-min-dp-ratio`` (``GARRISON_BIAS_MIN_DP_RATIO``).
The tables are ``[bias]`` and ``[assess]`` (:data:`SECTIONS`).
An unknown key in a file is an error naming the file and the key.
:func:`load_settings` also returns where every value came from, for ``garrison config show``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator

from garrison.core.errors import ConfigError
from garrison.core.severity import Severity

ENV_PREFIX = "GARRISON_"
CONFIG_FILENAME = "garrison.toml"
DEFAULT_STATE_DIR = ".garrison"

OutputFormat = Literal["console", "json", "sarif", "html"]
DigestMode = Literal["auto", "full", "none"]


class Settings(BaseModel):
    """Every setting Garrison reads. Field descriptions are shown by ``garrison config show``."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    db: str | None = Field(
        default=None,
        description="Findings store: a SQLAlchemy URL or a file path. Default: .garrison/garrison.db",
    )
    store: bool = Field(default=True, description="Save scan runs in the store.")
    fail_on: Severity = Field(
        default=Severity.HIGH, description="Lowest severity that makes a scan exit with code 1."
    )
    format: OutputFormat = Field(default="console", description="Report format.")
    select: tuple[str, ...] = Field(default=(), description="Only these rule ids or families.")
    ignore: tuple[str, ...] = Field(default=(), description="Leave out these rule ids or families.")
    baseline: Path | None = Field(
        default=None, description="Report only findings not in this earlier JSON or SARIF report."
    )
    allow_incomplete: bool = Field(
        default=False, description="Exit 0 rather than 3 when some asset could not be scanned."
    )
    exclude: tuple[str, ...] = Field(
        default=(
            ".git",
            ".hg",
            ".svn",
            ".garrison",
            ".venv",
            "venv",
            "__pycache__",
            "node_modules",
            ".mypy_cache",
            ".ruff_cache",
            ".pytest_cache",
        ),
        description="Glob patterns of file or directory names not to scan.",
    )
    max_files: int = Field(default=200_000, ge=1, description="Most files one scan reads.")
    max_file_bytes: int = Field(default=64 * 2**30, ge=1, description="Largest file a scan reads, in bytes.")
    progress: bool = Field(default=True, description="Show progress bars on stderr.")
    require_signature: bool = Field(
        default=False,
        description="garrison load and safe_load refuse a file unless it verifies against its signature.",
    )
    signature_key: Path | None = Field(
        default=None,
        description="PEM public key that model signatures must verify with (safe loading, gateway).",
    )
    signature_certs: tuple[Path, ...] = Field(
        default=(),
        description="PEM CA certificates that signing certificates must chain to (instead of a key).",
    )
    jobs: int = Field(
        default=0,
        ge=0,
        le=256,
        description="Worker processes for a scan; 0 picks one per CPU core (at most 8) for 64 files or more.",
    )
    digest: DigestMode = Field(
        default="auto",
        description="Content digest of each scanned file: 'full' hashes every file, 'none' none, "
        "'auto' only files up to digest-max-bytes (detectors skip tensor data; hashing it would "
        "dominate the scan; sign or manifest large files for their digests).",
    )
    digest_max_bytes: int = Field(
        default=64 * 2**20, ge=0, description="Largest file whose SHA-256 'auto' digest mode computes."
    )
    archive_max_depth: int = Field(default=4, ge=0, description="Deepest nesting of archives opened.")
    archive_max_members: int = Field(
        default=10_000, ge=1, description="Most archive members opened from one file, all levels together."
    )
    archive_max_expanded_bytes: int = Field(
        default=4 * 2**30, ge=1, description="Most bytes extracted from one file, all levels together."
    )
    archive_max_ratio: int = Field(
        default=200, ge=2, description="Highest expansion ratio of one compressed member before it is a bomb."
    )
    pii_recognizers: tuple[str, ...] = Field(
        default=(),
        description="Extra personal-data recognizers for dataset scans: 'wordlist:PATH' or the name[:arg] "
        "of a garrison.pii_recognizers plugin (an NER model, for example).",
    )
    bias_max_dp_difference: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="garrison data bias: flag a demographic parity difference above this.",
    )
    bias_min_dp_ratio: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="garrison data bias: flag a demographic parity ratio below this (four-fifths rule).",
    )
    bias_max_eo_difference: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="garrison data bias: flag an equalized odds difference above this.",
    )
    bias_min_group_rows: int = Field(
        default=30, ge=1, description="garrison data bias: leave groups with fewer rows out of the metrics."
    )
    assess_epsilon: float = Field(
        default=0.1,
        gt=0,
        description="garrison assess model: judge robust accuracy at this perturbation budget (input units) "
        "and below.",
    )
    assess_min_robust_accuracy: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="garrison assess model: flag a robust accuracy below this at assess-epsilon or less.",
    )
    assess_min_median_l2: float = Field(
        default=1.0,
        ge=0,
        description="garrison assess model: flag a minimal-perturbation attack (CW-L2, HopSkipJump) whose "
        "median L2 is below this.",
    )
    assess_max_membership_auc: float = Field(
        default=0.6,
        ge=0.5,
        le=1,
        description="garrison assess model --attacks privacy: flag a membership-inference AUC above this "
        "(0.5 is guessing).",
    )
    assess_max_extraction_fidelity: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="garrison assess model --attacks extraction: flag a stolen copy that agrees with the "
        "model on this share of inputs or more within assess-extraction-queries queries.",
    )
    assess_max_attribute_advantage: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="garrison assess model --attacks attribute: flag an attack that guesses the sensitive "
        "column better than the other columns alone by more than this.",
    )
    assess_max_attribute_member_gap: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="garrison assess model --attacks attribute: flag an advantage on training records above "
        "the advantage on other records by more than this (memorisation).",
    )
    assess_min_inversion_identified: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="garrison assess model --attacks inversion: flag when this share of class "
        "reconstructions (and twice chance) is recognisably its class.",
    )
    assess_extraction_queries: int = Field(
        default=1000,
        ge=1,
        description="garrison assess model --attacks extraction: the query budget at which (and below "
        "which) extraction fidelity is judged.",
    )

    @field_validator(
        "bias_max_dp_difference",
        "bias_min_dp_ratio",
        "bias_max_eo_difference",
        "bias_min_group_rows",
        "assess_epsilon",
        "assess_min_robust_accuracy",
        "assess_min_median_l2",
        "assess_max_membership_auc",
        "assess_max_extraction_fidelity",
        "assess_extraction_queries",
        "assess_max_attribute_advantage",
        "assess_max_attribute_member_gap",
        "assess_min_inversion_identified",
        mode="before",
    )
    @classmethod
    def _number(cls, value: object) -> object:
        if isinstance(value, bool):  # TOML true would otherwise pass as 1
            raise ValueError("must be a number, not a boolean")
        return value

    @field_validator("fail_on", mode="before")
    @classmethod
    def _severity(cls, value: object) -> Severity:
        if isinstance(value, str | int | Severity):
            try:
                return Severity.parse(value, where="fail-on")
            except ConfigError as exc:
                raise ValueError(f"not a severity; {exc.hint}") from None
        raise ValueError("must be a severity name")

    @field_serializer("fail_on")
    def _severity_name(self, value: Severity) -> str:
        return value.label

    def db_url(self, root: Path) -> str:
        """The store URL: ``db`` as given, a file path turned into a SQLite URL, or the default."""
        if self.db is None:
            return "sqlite:///" + str((root / DEFAULT_STATE_DIR / "garrison.db").resolve())
        if "://" in self.db:
            return self.db
        return "sqlite:///" + str(Path(self.db).expanduser().resolve())


SETTING_NAMES: tuple[str, ...] = tuple(Settings.model_fields)
SECTIONS: frozenset[str] = frozenset({"bias", "assess"})
"""Tables a file may group settings in: ``max-dp-difference`` in ``[bias]`` is ``bias-max-dp-difference``."""
_LIST_FIELDS = {"select", "ignore", "exclude"}
_PATH_FIELDS = {"baseline"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """Where a setting's value came from."""

    kind: Literal["default", "file", "env", "flag"]
    """Which layer set it."""
    detail: str = ""
    """The file path, variable name or flag."""

    def __str__(self) -> str:
        return self.kind if not self.detail else f"{self.kind} ({self.detail})"


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedSettings:
    """The settings, where each came from, and the project root they were resolved against."""

    settings: Settings
    sources: Mapping[str, Source]
    root: Path
    """Directory of the configuration file, or the working directory when there is none."""
    config_file: Path | None


def find_config_file(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest ``garrison.toml`` or ``pyproject.toml`` with ``[tool.garrison]``, and its table."""
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_FILENAME
        if candidate.is_file():
            return candidate, _read_toml(candidate)
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("garrison")
            if isinstance(table, dict):
                return pyproject, table
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: is not valid TOML: {exc}") from None


def _flatten(path: Path, table: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """The file's keys, with those of a :data:`SECTIONS` table prefixed by its name."""
    for key, value in table.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: {key!r} must be a table ([{key}]), not {type(value).__name__}")
            yield from ((f"{key}-{sub}", item) for sub, item in value.items())
        else:
            yield key, value


def _from_file(path: Path, table: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in _flatten(path, table):
        name = key.replace("-", "_")
        if name not in SETTING_NAMES:
            raise ConfigError(
                f"{path}: unknown setting {key!r}",
                hint="known settings: " + ", ".join(_kebab(n) for n in SETTING_NAMES),
            )
        relative_path = name in _PATH_FIELDS or (name == "db" and "://" not in str(value))
        if relative_path and isinstance(value, str):
            values[name] = str((path.parent / value).resolve())
        else:
            values[name] = value
    return values


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in SETTING_NAMES:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is None:
            continue
        if name in _LIST_FIELDS:
            values[name] = tuple(part.strip() for part in raw.split(",") if part.strip())
        else:
            values[name] = raw
    return values


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    config_file: Path | None = None,
) -> LoadedSettings:
    """Build settings from every layer; raise ``ConfigError`` naming the layer and key that is wrong.

    ``flags`` holds only the flags the user gave (``None`` values are ignored).
    """
    env = os.environ if env is None else env
    cwd = (cwd or Path.cwd()).resolve()
    layers: list[tuple[Source, dict[str, Any]]] = []
    found: tuple[Path, dict[str, Any]] | None
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"configuration file {config_file} does not exist")
        table = _read_toml(config_file)
        if config_file.name == "pyproject.toml":
            table = table.get("tool", {}).get("garrison", {})
        found = (config_file.resolve(), table)
    else:
        found = find_config_file(cwd)
    if found is not None:
        layers.append((Source(kind="file", detail=str(found[0])), _from_file(*found)))
    env_values = _from_env(env)
    for key, value in env_values.items():
        layers.append((Source(kind="env", detail=ENV_PREFIX + key.upper()), {key: value}))
    for key, value in (flags or {}).items():
        if value is None:
            continue
        if key not in SETTING_NAMES:
            raise ConfigError(f"unknown setting {key!r} passed as a flag")
        layers.append((Source(kind="flag", detail="--" + _kebab(key)), {key: value}))

    merged: dict[str, Any] = {}
    sources: dict[str, Source] = {name: Source(kind="default") for name in SETTING_NAMES}
    for source, values in layers:
        for key, value in values.items():
            merged[key] = value
            sources[key] = source
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "?"
        where = sources.get(key, Source(kind="default"))
        raise ConfigError(
            f"setting {_kebab(key)!r} from {where}: {err['msg'].removeprefix('Value error, ')} "
            f"(got {merged.get(key)!r})"
        ) from None
    root = found[0].parent if found is not None else cwd
    return LoadedSettings(
        settings=settings, sources=sources, root=root, config_file=found[0] if found else None
    )
