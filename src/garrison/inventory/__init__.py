"""File inventory: every file's real format, and the risks its format and name reveal.

Built-in detectors of this package are listed in :data:`DETECTORS`.
"""

from garrison.inventory.detector import FileInventory
from garrison.inventory.rules import RULES

DETECTORS = (FileInventory,)
"""Detectors this package provides, for the registry."""

__all__ = ["DETECTORS", "RULES", "FileInventory"]
