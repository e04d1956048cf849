"""ONNX model scanner: custom operator domains and external-data paths.

Built-in detectors of this package are listed in :data:`DETECTORS`.
"""

from garrison.supplychain.onnx.detector import OnnxScanner
from garrison.supplychain.onnx.rules import RULES

DETECTORS = (OnnxScanner,)
"""Detectors this package provides, for the registry."""

__all__ = ["DETECTORS", "RULES", "OnnxScanner"]
