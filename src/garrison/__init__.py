"""Garrison: a security platform for AI systems.

The public vocabulary lives in :mod:`garrison.core`; every scanner, assessment, gateway step and
monitor speaks it. Importing this package is cheap: nothing heavy is imported until it is used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
