"""The scan engine: walk a path, identify each file from its bytes, run the detectors that apply.

A detector that fails becomes an error record and the scan goes on; hitting a limit is itself a
finding. The engine never executes what it reads.
"""

from garrison.engine.rules import ENGINE_RULES
from garrison.engine.runner import Progress, scan_path

__all__ = ["ENGINE_RULES", "Progress", "scan_path"]
