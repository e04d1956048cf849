"""Garrison: a security platform for AI systems.

The public vocabulary lives in :mod:`garrison.core`; every scanner, assessment, gateway step and
monitor speaks it. Importing this package is cheap: nothing heavy is imported until it is used.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from garrison.loading import safe_load

__version__ = "0.1.0"

__all__ = ["__version__", "safe_load"]


def __getattr__(name: str) -> object:
    """``garrison.safe_load``, imported on first use so that ``import garrison`` stays cheap."""
    if name == "safe_load":
        from garrison.loading import safe_load

        return safe_load
    raise AttributeError(f"module 'garrison' has no attribute {name!r}")
