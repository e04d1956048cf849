"""Safe loading's parts: the restricted unpickler, one loader per format family, the refusal rule.

The entry point composes them with a scan: :func:`garrison.loading.safe_load` (also
``garrison.safe_load`` and ``garrison load``), a top-level module because it runs the engine. It refuses
a file the scanner flags at medium severity or above, and loads the rest with an unpickler that
imports only the globals on Garrison's allowlist (:mod:`garrison.supplychain.policy`), so the two
lines of defence are independent: a global the scan missed is still refused at load time.

Modules: :mod:`~.refusal` (the refusal rule), :mod:`~.unpickler` (the restricted
unpickler), :mod:`~.torchfile`, :mod:`~.joblibfile` and :mod:`~.numpyfile` (one loader per format
family), :mod:`~.summary` (what was loaded, for the command line), :mod:`~.errors`.
Nothing heavy is imported until a file is loaded.
"""

from garrison.supplychain.safeload.errors import LoadRefusedError
from garrison.supplychain.safeload.refusal import REFUSE_AT
from garrison.supplychain.safeload.unpickler import (
    Gate,
    RefusedPickleError,
    RestrictedUnpickler,
    parse_trusted,
    restricted_load,
    restricted_loads,
)

__all__ = [
    "REFUSE_AT",
    "Gate",
    "LoadRefusedError",
    "RefusedPickleError",
    "RestrictedUnpickler",
    "parse_trusted",
    "restricted_load",
    "restricted_loads",
]
