"""Model supply chain: scanners that find hidden code in model files without executing them.

Subpackages, one per format family, each listing its detectors in a ``DETECTORS`` tuple:
:mod:`garrison.supplychain.pickle` (symbolic execution of pickle opcode streams). The allowlist that
decides which pickle globals are acceptable lives in :mod:`garrison.supplychain.policy`, as data.
"""
