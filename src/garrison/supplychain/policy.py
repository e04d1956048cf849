"""The pickle allowlist: which globals a pickle may import, kept as data.

Policy lives in ``garrison/supplychain/data/pickle_policy.toml`` and is loaded once. A global is
graded :attr:`Classification.ALLOWED` (an ordinary model needs it), :attr:`Classification.CRITICAL`
(known to run code, import, spawn, write files or reach the network) or
:attr:`Classification.UNKNOWN` (anything else: unknown globals are findings too, graded high).

Names are treated as *dotted paths*: with protocol 4 and later, ``STACK_GLOBAL`` resolves
``'OrderedDict.__init__.__globals__'`` by a chain of ``getattr`` calls, so a name is only allowed when
the whole path is on the list, and a path that walks through a dunder attribute or reaches a critical
module anywhere along the way (``torch`` + ``'_utils.os.system'``) is critical.

Nothing here imports the modules it names.
"""

from __future__ import annotations

import _compat_pickle
import re
import tomllib
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import resources

from garrison.core.errors import ConfigError

POLICY_RESOURCE = "pickle_policy.toml"
"""File name of the policy under ``garrison.supplychain.data``."""

_MAX_PATH_PARTS = 32
"""Longer dotted paths are critical outright: no real model needs them."""


class Classification(Enum):
    """What the policy says about one global."""

    ALLOWED = "allowed"
    """On the allowlist: ordinary model files need it."""
    UNKNOWN = "unknown"
    """Not on the allowlist and not known to be dangerous: still a finding (high)."""
    CRITICAL = "critical"
    """Known to execute code, import, spawn processes, write files or reach the network."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """A classification and the reason for it."""

    classification: Classification
    """The grade."""
    reason: str
    """Why, in words a user can act on."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _AllowRule:
    prefix: str
    names: re.Pattern[str]
    exclude: tuple[str, ...]
    reason: str

    def matches(self, module: str, name: str) -> bool:
        if not _under(module, self.prefix) or any(_under(module, ex) for ex in self.exclude):
            return False
        return self.names.fullmatch(name) is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """The loaded policy tables."""

    allow: frozenset[str]
    """Exact ``module.name`` entries that are allowed."""
    allow_reason: str
    """Reason quoted for exact allow entries."""
    rules: tuple[_AllowRule, ...]
    """Class-name rules under module prefixes."""
    critical_names: dict[str, str]
    """Exact ``module.name`` entries that are critical, with reasons."""
    critical_modules: dict[str, str]
    """Modules whose every name (and submodule) is critical, with reasons."""
    any_module_names: frozenset[str]
    """Names critical in any module that is not allowlisted."""
    any_module_reason: str
    """Reason quoted for :attr:`any_module_names`."""


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@cache
def load_policy() -> Policy:
    """The policy shipped with Garrison, parsed once."""
    try:
        text = resources.files("garrison.supplychain.data").joinpath(POLICY_RESOURCE).read_text("utf-8")
        data = tomllib.loads(text)
        allow = frozenset(f"{mod}.{name}" for mod, names in data["allow"].items() for name in names)
        rules = tuple(
            _AllowRule(
                prefix=r["prefix"],
                names=re.compile(r["names"]),
                exclude=tuple(r.get("exclude", ())),
                reason=r["reason"],
            )
            for r in data.get("allow_rule", ())
        )
        critical = data["critical"]
        return Policy(
            allow=allow,
            allow_reason=data["allow_reason"],
            rules=rules,
            critical_names=dict(critical["names"]),
            critical_modules=dict(critical["modules"]),
            any_module_names=frozenset(critical["any_module"]["names"]),
            any_module_reason=critical["any_module"]["reason"],
        )
    except (OSError, KeyError, TypeError, ValueError, re.error) as exc:  # tomllib errors are ValueErrors
        raise ConfigError(f"the packaged pickle policy {POLICY_RESOURCE} is unreadable: {exc}") from None


def compat_resolve(module: str, name: str, protocol: int) -> tuple[str, str]:
    """The module and name CPython's unpickler imports, after its Python 2 name mapping.

    ``Unpickler.find_class`` applies :mod:`_compat_pickle` only when the stream's protocol is below 3
    (and ``fix_imports`` is on, the default): ``('__builtin__', 'eval')`` becomes ``builtins.eval``.
    """
    if protocol < 3:
        mapped = _compat_pickle.NAME_MAPPING.get((module, name))
        if mapped is not None:
            return mapped
        return _compat_pickle.IMPORT_MAPPING.get(module, module), name
    return module, name


def _is_dunder(part: str) -> bool:
    return len(part) > 4 and part.startswith("__") and part.endswith("__")


def _critical_along(policy: Policy, parts: list[str], first_name_part: int) -> str | None:
    """Reason if the dotted path reaches a critical module or name through attribute access.

    Checked: every prefix of the whole path (``torch`` + ``serialization.load`` is
    ``torch.serialization``), and every run of consecutive parts inside the name (``torch`` +
    ``_utils.os.system`` reaches ``os`` and ``os.system``).
    """
    starts = [0, *range(max(first_name_part, 1), len(parts))]
    for start in starts:
        for stop in range(start + 1, len(parts) + 1):
            dotted = ".".join(parts[start:stop])
            if dotted in policy.critical_names:
                return f"reaches {dotted}: {policy.critical_names[dotted]}"
            if dotted in policy.critical_modules:
                return f"reaches module {dotted}: {policy.critical_modules[dotted]}"
    return None


def _module_critical(policy: Policy, module: str) -> str | None:
    parts = module.split(".")
    for stop in range(len(parts), 0, -1):
        prefix = ".".join(parts[:stop])
        if prefix in policy.critical_modules:
            return f"module {prefix}: {policy.critical_modules[prefix]}"
    return None


@cache
def verdict(module: str, name: str) -> Verdict:
    """Grade the global ``module.name`` (already mapped by :func:`compat_resolve`) and say why."""
    policy = load_policy()
    full = f"{module}.{name}"
    if full in policy.critical_names:
        return Verdict(classification=Classification.CRITICAL, reason=policy.critical_names[full])
    if full in policy.allow:
        return Verdict(classification=Classification.ALLOWED, reason=policy.allow_reason)
    if not module or not name or any(not p for p in full.split(".")):
        return Verdict(classification=Classification.UNKNOWN, reason="empty module or name component")
    parts = full.split(".")
    name_parts = name.split(".")
    if len(parts) > _MAX_PATH_PARTS:
        return Verdict(classification=Classification.CRITICAL, reason="absurdly deep attribute path")
    if len(name_parts) > 1:
        dunders = [p for p in name_parts if _is_dunder(p)]
        if dunders:
            return Verdict(
                classification=Classification.CRITICAL,
                reason=f"attribute path walks through {dunders[0]}, which reaches interpreter internals",
            )
    along = _critical_along(policy, parts, len(module.split(".")))
    if along is not None:
        return Verdict(classification=Classification.CRITICAL, reason=along)
    mod_reason = _module_critical(policy, module)
    if mod_reason is not None:
        return Verdict(classification=Classification.CRITICAL, reason=mod_reason)
    if len(name_parts) == 1:
        for rule in policy.rules:
            if rule.matches(module, name):
                return Verdict(classification=Classification.ALLOWED, reason=rule.reason)
    if any(p in policy.any_module_names for p in name_parts):
        return Verdict(classification=Classification.CRITICAL, reason=policy.any_module_reason)
    if len(name_parts) > 1:
        return Verdict(
            classification=Classification.UNKNOWN,
            reason="dotted attribute path that is not on the allowlist",
        )
    return Verdict(
        classification=Classification.UNKNOWN,
        reason="not on the allowlist of constructors ordinary models need",
    )


def classify(module: str, name: str) -> Classification:
    """The grade of ``module.name``: allowed, unknown or critical."""
    return verdict(module, name).classification


def explain(module: str, name: str) -> str:
    """Why ``module.name`` is graded the way it is."""
    return verdict(module, name).reason


def worst(*verdicts: Verdict) -> Verdict:
    """The most severe of several verdicts (critical > unknown > allowed)."""
    order = {Classification.ALLOWED: 0, Classification.UNKNOWN: 1, Classification.CRITICAL: 2}
    return max(verdicts, key=lambda v: order[v.classification])
