"""What the symbolic pickle machine reports: globals, calls, persistent ids, nested pickles, limits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalRef:
    """A callable or class the pickle imports."""

    module: str
    """Module the unpickler imports, after CPython's Python 2 name mapping (protocol < 3)."""
    name: str
    """Attribute (a dotted path for STACK_GLOBAL with protocol 4+) looked up on the module."""
    opcode: str
    """How it was imported: ``GLOBAL``, ``STACK_GLOBAL`` or ``INST``."""
    index: int
    """Opcode index (counted from 0 within this pickle)."""
    offset: int
    """Byte offset of the opcode in the buffer."""
    via: str
    """How the operands reached the opcode, e.g. ``STACK_GLOBAL <- BINGET 3 <- SHORT_BINUNICODE@12``."""

    @property
    def dotted(self) -> str:
        """``module.name``."""
        return f"{self.module}.{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRef:
    """A call or state-setting the unpickler would perform."""

    callee: GlobalRef | None
    """The global being called (or whose instance's state is set); ``None`` for a dynamic value."""
    opcode: str
    """``REDUCE``, ``OBJ``, ``INST``, ``NEWOBJ``, ``NEWOBJ_EX`` or ``BUILD``."""
    index: int
    """Opcode index."""
    offset: int
    """Byte offset of the opcode."""
    result_discarded: bool
    """Whether the result was popped (POP/POP_MARK) without being used: a call made for its effect."""
    on_global: bool = False
    """For BUILD: the state is set on the imported global itself (a class, function or module)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistentRef:
    """A persistent id (PERSID/BINPERSID): PyTorch uses them to refer to tensor storages."""

    index: int
    """Opcode index."""
    offset: int
    """Byte offset of the opcode."""
    value: object
    """The id as plain values: tuples, str, int, float, bool, None; globals as ``'module.name'``;
    values the machine cannot represent as ``None``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PickleAnalysis:
    """What one pickle in a buffer would do if it were loaded."""

    start: int
    """Offset of the first opcode."""
    end: int
    """Offset after STOP, or where analysis stopped."""
    protocol: int
    """Highest protocol the stream declared with PROTO (0 without one)."""
    opcodes: int
    """Opcodes analysed."""
    globals: tuple[GlobalRef, ...]
    """Every global imported, in order."""
    calls: tuple[CallRef, ...]
    """Every call and state-setting, in order."""
    dynamic_imports: tuple[tuple[int, int, str], ...]
    """``(index, offset, why)`` for imports whose target is not a constant: STACK_GLOBAL or INST
    operands computed at load time, EXT codes, calls on values that are not globals."""
    nested: tuple[tuple[int, int], ...]
    """``(offset, length)`` of bytes/str constants that look like pickles themselves."""
    malformed: str | None
    """Why the stream is invalid, when it is; what came before the break is still reported."""
    malformed_offset: int | None
    """Where it broke."""
    persistent_ids: tuple[PersistentRef, ...] = ()
    """Persistent ids, for container scanners that map them to storages."""
    out_of_band_buffers: int = 0
    """NEXT_BUFFER opcodes (protocol 5 buffers supplied by the loader, not in the stream)."""
    limit_hit: str | None = None
    """Which :class:`PickleLimits` bound stopped the analysis, if one did."""
    trailing: int = 0
    """Bytes after this pickle that are not a pickle (set on the last analysis of a stream)."""
    skipped: tuple[tuple[int, int], ...] = ()
    """``(offset, length)`` of raw array data joblib reads from inside the stream, skipped."""
    inline: tuple[PickleAnalysis, ...] = ()
    """Pickles joblib loads from inside this one (object arrays), analysed in place."""
    nested_analyses: tuple[tuple[int, PickleAnalysis], ...] = ()
    """``(offset, analysis)`` of each :attr:`nested` constant that parses as a whole pickle; the
    analysis's offsets are relative to the constant's first byte."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PickleLimits:
    """Bounds on one analysis. Hitting one ends the analysis with :attr:`PickleAnalysis.limit_hit`."""

    max_opcodes: int = 50_000_000
    """Opcodes per pickle."""
    max_memo: int = 1_000_000
    """Memo entries."""
    max_stack: int = 1_000_000
    """Stack items plus marks."""
    max_nesting: int = 4
    """Depth of pickles inside pickles (nested bytes, joblib object arrays)."""
    max_bytes: int | None = None
    """Bytes of one pickle, or ``None`` for no bound besides the buffer."""
    max_seconds: float | None = 60.0
    """Wall-clock seconds per pickle (checked every 65,536 opcodes), or ``None`` for no bound."""
