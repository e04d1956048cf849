"""Black-box models an assessment reaches without their weights: ONNX Runtime sessions and HTTP endpoints.

The adapters live in :mod:`garrison.assess.adapters_onnx` and :mod:`garrison.assess.adapters_http`
(their common base in :mod:`garrison.assess.adapters_blackbox`); this module picks one.

:class:`OnnxModel` wraps an ``onnxruntime.InferenceSession``, or loads a ``.onnx`` file into a hardened
one (CPU only, no custom-op library, no profiling or optimised-model files written; refused before
ONNX Runtime sees it when it uses a custom operator domain or external data outside its directory).
:class:`HttpModel` queries a model server over HTTP(S): the KServe v2 inference protocol, or any JSON
server with configurable request and response fields — which covers the Garrison gateway's ``kserve``,
``json`` and ``local`` routes, including their output controls (labels only, top-k, rounding).

What the model answers is read per response and fixed on the first one:

- a score row per input (``(N, C)``): logits, probabilities or log-probabilities, detected as for the
  other adapters (:func:`~garrison.assess.adapters.detect_output_kind`; probabilities rounded by an
  output control are still read as probabilities);
- a label per input (an integer index, or a class value when ``classes=`` is given): labels only;
- the top-k classes per input, ``[[class, p], ...]`` (or KServe v2 ``<name>`` scores with a
  ``<name>_indices`` output): probabilities, the k known ones kept and the rest of the mass spread
  evenly over the other classes (as an attacker reads a top-k API); top-k values that are not
  probabilities are logits, and the unseen classes get the k-th one (their upper bound). Labels and
  top-k need ``n_classes`` or ``classes``; the predicted class is always the model's own top one.

Neither adapter has gradients: attack them with ``square`` (scores) or ``hopskipjump`` (labels).
:func:`remote_model` builds one from a session, a ``.onnx`` path or an ``http(s)://`` URL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from garrison.assess.adapters import ModelAdapter

__all__ = ["remote_model"]


def remote_model(spec: str | Path | Any, **kw: Any) -> ModelAdapter | None:
    """An adapter for an ONNX Runtime session, a ``.onnx`` path or an ``http(s)://`` URL; None for
    anything else (so :func:`~garrison.assess.adapters.as_model` can go on to its other cases).
    ``kw`` goes to :class:`OnnxModel` or :class:`HttpModel`.
    """
    if isinstance(spec, str) and spec.lower().startswith(("http://", "https://")):
        from garrison.assess.adapters_http import HttpModel

        return HttpModel(spec, **kw)
    if isinstance(spec, str | os.PathLike):
        path = Path(spec)
        if path.suffix.lower() == ".onnx":
            from garrison.assess.adapters_onnx import OnnxModel

            return OnnxModel(path, **kw)
        return None
    if type(spec).__module__.startswith("onnxruntime") and hasattr(spec, "get_inputs"):
        from garrison.assess.adapters_onnx import OnnxModel

        return OnnxModel(spec, **kw)
    return None
