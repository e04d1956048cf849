"""Pickle analysis by symbolic execution of the opcode stream: never unpickling, never importing.

:func:`analyze_pickle` and :func:`analyze_stream` run CPython's unpickler symbolically and record
what it would import (:class:`GlobalRef`) and call (:class:`CallRef`); :func:`pickle_findings` grades
that against the allowlist in :mod:`garrison.supplychain.policy`. Container scanners (PyTorch zip,
compressed joblib, NumPy object arrays) call these on the pickle bytes they extract.

Import this package as ``garrison.supplychain.pickle``, never with a relative ``import pickle``.
"""

from garrison.supplychain.pickle.detector import PickleScanner
from garrison.supplychain.pickle.findings import is_clean, pickle_findings
from garrison.supplychain.pickle.machine import DEFAULT_LIMITS, analyze_pickle, analyze_stream
from garrison.supplychain.pickle.model import (
    CallRef,
    GlobalRef,
    PersistentRef,
    PickleAnalysis,
    PickleLimits,
)
from garrison.supplychain.pickle.rules import RULES

DETECTORS = (PickleScanner,)
"""Detectors this package provides, for the registry."""

__all__ = [
    "DEFAULT_LIMITS",
    "DETECTORS",
    "RULES",
    "CallRef",
    "GlobalRef",
    "PersistentRef",
    "PickleAnalysis",
    "PickleLimits",
    "PickleScanner",
    "analyze_pickle",
    "analyze_stream",
    "is_clean",
    "pickle_findings",
]
