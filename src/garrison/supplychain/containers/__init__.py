"""Model containers: PyTorch zip, legacy and TorchScript checkpoints, NumPy files, compressed joblib.

Each container is read the way its loader reads it (``torch.load``'s miniz view of a zip, numpy's
zipfile view of an npz, joblib's decompressors) and every pickle the loader would run is handed to
the pickle engine. Built-in detectors of this package are listed in :data:`DETECTORS`.
"""

from garrison.supplychain.containers.detectors import PickleContainers, PyTorchCheckpoint
from garrison.supplychain.containers.rules import RULES

DETECTORS = (PyTorchCheckpoint, PickleContainers)
"""Detectors this package provides, for the registry."""

__all__ = ["DETECTORS", "RULES", "PickleContainers", "PyTorchCheckpoint"]
