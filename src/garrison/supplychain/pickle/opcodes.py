"""Opcode bytes of the pickle machine (from :mod:`pickletools` metadata) and text decoders."""

from __future__ import annotations

import pickletools

from garrison.supplychain.pickle.values import decode_text

NAMES: dict[int, str] = {ord(o.code.encode("latin-1")): o.name for o in pickletools.opcodes}
"""Opcode byte -> opcode name, for every opcode of protocols 0 to 5."""

CODES: dict[str, int] = {name: code for code, name in NAMES.items()}
"""Opcode name -> byte."""

_VALID = bytes(1 if i in NAMES else 0 for i in range(256))


def is_opcode(byte: int) -> bool:
    """Whether ``byte`` is a pickle opcode."""
    return _VALID[byte] == 1


def decode(raw: bytes, kind: str) -> str:
    """Decode a string constant as the unpickler does; ``ValueError`` if it would fail."""
    if kind == "utf-8":
        return raw.decode("utf-8", "surrogatepass")
    return decode_text(raw, kind)
