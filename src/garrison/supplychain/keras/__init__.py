"""Keras model scanners: ``.keras`` archives and legacy ``.h5`` files.

Built-in detectors of this package are listed in :data:`DETECTORS`.
"""

from garrison.supplychain.keras.detector import KerasScanner
from garrison.supplychain.keras.rules import RULES

DETECTORS = (KerasScanner,)
"""Detectors this package provides, for the registry."""

__all__ = ["DETECTORS", "RULES", "KerasScanner"]
