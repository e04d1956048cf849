"""The restricted unpickler: the second, independent line of defence of safe loading.

:func:`garrison.safe_load` scans a file first and refuses it on findings; this module is what runs
afterwards, and it does not trust the scan. It is CPython's pure-Python unpickler with three changes:

- ``find_class`` imports a global only when :mod:`garrison.supplychain.policy` grades it
  :attr:`~garrison.supplychain.policy.Classification.ALLOWED` (the same allowlist the scanner
  applies, dotted names and dunder paths included), or when the caller named that exact
  ``(module, name)`` pair as trusted. Anything else raises :class:`RefusedPickleError` before the
  module is imported. Python 2 names are mapped first, exactly as CPython does, so what is checked
  is what is imported.
- ``BUILD``, ``SETITEM(S)``, ``APPEND(S)`` and ``ADDITEMS`` refuse to modify an object that
  ``find_class`` returned: a class, function or singleton shared by the whole interpreter. On a
  fresh object these opcodes only fill in data; on a global they patch the process.
- ``EXT1/2/4`` are refused: they import through the process-wide :mod:`copyreg` extension
  registry and its cache, which this module does not control. Ordinary model files never use them.

Every refusal is also recorded on the :class:`Gate`, so a caller can fail closed even if some
library code between the unpickler and the caller swallowed the exception.
"""

from __future__ import annotations

import io
import pickle
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

from garrison.core.errors import ConfigError
from garrison.supplychain.policy import Classification, compat_resolve, verdict

_Op = Callable[[Any], None]
_BASE_DISPATCH: dict[int, _Op] = dict(pickle._Unpickler.dispatch)  # CPython's own opcode table


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """One thing the restricted unpickler refused to do."""

    target: str
    """Dotted name of the global concerned, for example ``os.system``."""
    reason: str
    """Why, in words a user can act on."""


class RefusedPickleError(pickle.UnpicklingError):
    """The pickle stream asked for a global outside the allowlist, or to modify one."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"refused {refusal.target}: {refusal.reason}")
        self.refusal = refusal


class TrailingDataError(pickle.UnpicklingError):
    """Bytes follow the end of the pickle: a second stream the loader would not read, but another
    reader (or the scanner) might."""


def _is_dunder(part: str) -> bool:
    return len(part) > 4 and part.startswith("__") and part.endswith("__")


def parse_trusted(entries: Iterable[str]) -> frozenset[tuple[str, str]]:
    """Globals a caller trusts beyond the allowlist, as exact ``(module, name)`` pairs.

    An entry is ``package.module.Name`` (split at the last dot) or ``package.module:Outer.Inner``
    (explicit, for nested classes); a single string is one entry. Raises
    :class:`~garrison.core.errors.ConfigError` for a malformed entry, a dunder name, or a global the
    policy grades critical: the allowlist can be extended with the caller's own classes, never with
    something known to run code.
    """
    pairs: set[tuple[str, str]] = set()
    for entry in (entries,) if isinstance(entries, str) else entries:
        text = entry.strip()
        module, sep, name = text.partition(":") if ":" in text else text.rpartition(".")
        parts = [*module.split("."), *name.split(".")]
        if not sep or not module or not name or not all(p.isidentifier() for p in parts):
            raise ConfigError(
                f"trusted global {entry!r} is not a dotted name",
                hint="write package.module.ClassName, or package.module:Outer.Inner for a nested class",
            )
        if any(_is_dunder(p) for p in name.split(".")):
            raise ConfigError(f"trusted global {entry!r} names a dunder attribute; that cannot be allowed")
        judged = verdict(module, name)
        if judged.classification is Classification.CRITICAL:
            raise ConfigError(
                f"{module}.{name} cannot be trusted: {judged.reason}",
                hint="safe loading never admits globals that run code, import, spawn or touch files",
            )
        pairs.add((module, name))
    return frozenset(pairs)


@dataclass(slots=True)
class Gate:
    """The decision every ``find_class`` call goes through, and the record of what it refused."""

    trusted: frozenset[tuple[str, str]] = frozenset()
    """Exact ``(module, name)`` pairs the caller trusts beyond the allowlist (see :func:`parse_trusted`)."""
    refusals: list[Refusal] = field(default_factory=list)
    """Everything refused so far, in order."""

    def refuse(self, target: str, reason: str) -> RefusedPickleError:
        """Record a refusal and return the exception to raise."""
        refusal = Refusal(target=target, reason=reason)
        self.refusals.append(refusal)
        return RefusedPickleError(refusal)

    def check(self, module: str, name: str) -> None:
        """Raise :class:`RefusedPickleError` unless ``module.name`` may be imported.

        Allowed: what the policy allows, and the trusted pairs unless the policy grades them critical.
        """
        judged = verdict(module, name)
        if judged.classification is Classification.ALLOWED:
            return
        if (module, name) in self.trusted and judged.classification is not Classification.CRITICAL:
            return
        raise self.refuse(f"{module}.{name}", f"{judged.classification.value}: {judged.reason}")


def _resolve(module: str, qualname: str) -> object:
    """Import ``module`` and walk ``qualname``, as ``pickle`` does, after the gate said yes."""
    __import__(module)
    obj: object = sys.modules[module]
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class RestrictedUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its opcodes can be hooked
    """An unpickler that imports only allowlisted globals and never patches them.

    Pass a :class:`Gate` to trust extra globals or to read the refusals afterwards; subclasses made
    by :func:`bind` carry one for callers (``torch.load``) that construct the unpickler themselves.
    """

    default_gate: ClassVar[Gate | None] = None
    """Gate used when none is passed (set by :func:`bind`)."""

    # Attributes of CPython's pure-Python unpickler that typeshed leaves out.
    stack: list[Any]
    metastack: list[list[Any]]
    proto: int
    fix_imports: bool

    def __init__(self, file: IO[bytes], *, gate: Gate | None = None, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.gate = gate or self.default_gate or Gate()
        self._imported: dict[int, object] = {}

    def find_class(self, module: str, name: str) -> Any:
        """Return the global ``module.name`` if the gate allows it; raise otherwise."""
        if type(module) is not str or type(name) is not str:
            raise self.gate.refuse(f"{module!r}.{name!r}", "global names must be strings")
        sys.audit("pickle.find_class", module, name)
        resolved_module, resolved_name = compat_resolve(module, name, self.proto if self.fix_imports else 3)
        self.gate.check(resolved_module, resolved_name)
        obj = _resolve(resolved_module, resolved_name)
        self._imported[id(obj)] = obj
        return obj

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids: a plain pickle has none, and they reach outside the stream."""
        raise pickle.UnpicklingError("persistent ids are not supported in this stream")

    def _refuse_if_global(self, target: object, opcode: str) -> None:
        if id(target) in self._imported and self._imported[id(target)] is target:
            name = getattr(target, "__qualname__", None) or type(target).__qualname__
            module = getattr(target, "__module__", None) or "?"
            raise self.gate.refuse(
                f"{module}.{name}",
                f"{opcode} would modify the imported global itself (patching shared interpreter state)",
            )

    def _marked_target(self) -> object | None:
        return self.metastack[-1][-1] if self.metastack and self.metastack[-1] else None

    def _load_build(self) -> None:
        if len(self.stack) >= 2:
            self._refuse_if_global(self.stack[-2], "BUILD")
        _BASE_DISPATCH[pickle.BUILD[0]](self)

    def _load_setitem(self) -> None:
        if len(self.stack) >= 3:
            self._refuse_if_global(self.stack[-3], "SETITEM")
        _BASE_DISPATCH[pickle.SETITEM[0]](self)

    def _load_append(self) -> None:
        if len(self.stack) >= 2:
            self._refuse_if_global(self.stack[-2], "APPEND")
        _BASE_DISPATCH[pickle.APPEND[0]](self)

    def _marked(self, opcode: bytes, label: str) -> None:
        self._refuse_if_global(self._marked_target(), label)
        _BASE_DISPATCH[opcode[0]](self)

    def _load_ext(self) -> None:
        raise self.gate.refuse(
            "copyreg extension registry",
            "EXT opcodes import through the process-wide extension registry; model files never need them",
        )

    dispatch: ClassVar[dict[int, _Op]] = {
        **_BASE_DISPATCH,
        pickle.BUILD[0]: _load_build,
        pickle.SETITEM[0]: _load_setitem,
        pickle.APPEND[0]: _load_append,
        pickle.SETITEMS[0]: lambda self: self._marked(pickle.SETITEMS, "SETITEMS"),
        pickle.APPENDS[0]: lambda self: self._marked(pickle.APPENDS, "APPENDS"),
        pickle.ADDITEMS[0]: lambda self: self._marked(pickle.ADDITEMS, "ADDITEMS"),
        pickle.EXT1[0]: _load_ext,
        pickle.EXT2[0]: _load_ext,
        pickle.EXT4[0]: _load_ext,
    }


def bind(gate: Gate, base: type[RestrictedUnpickler] = RestrictedUnpickler) -> type[RestrictedUnpickler]:
    """A subclass of ``base`` whose instances use ``gate`` when constructed without one."""
    return type("BoundRestrictedUnpickler", (base,), {"default_gate": gate})


class RestrictedPickleModule:
    """What ``torch.load(pickle_module=...)`` needs of a pickle module, restricted.

    ``torch.load`` subclasses ``pickle_module.Unpickler`` (to map storage names and attach its
    ``persistent_load``) and calls ``pickle_module.load`` for the header pickles of the legacy layout;
    both go through the same :class:`Gate`.
    """

    __name__ = "garrison.supplychain.safeload.unpickler"
    UnpicklingError = pickle.UnpicklingError

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.Unpickler = bind(gate)

    def load(self, file: IO[bytes], **kwargs: Any) -> Any:
        """Unpickle one object from ``file`` through the gate."""
        return self.Unpickler(file, **kwargs).load()


def restricted_load(file: IO[bytes], *, allow: Iterable[str] = (), **kwargs: Any) -> Any:
    """Unpickle one object from ``file`` with the restricted unpickler alone.

    This is the second line of defence only: it does not scan the file (no container, zip or
    tampering checks). Use :func:`garrison.safe_load` for files. ``allow`` names extra globals the
    caller trusts (see :func:`parse_trusted`).
    """
    return RestrictedUnpickler(file, gate=Gate(trusted=parse_trusted(allow)), **kwargs).load()


def restricted_loads(data: bytes, *, allow: Iterable[str] = (), **kwargs: Any) -> Any:
    """:func:`restricted_load` over bytes."""
    return restricted_load(io.BytesIO(data), allow=allow, **kwargs)
