"""ONNX models behind the gateway's ``kind: local`` routes: verified, scanned, then run by ONNX Runtime.

Loaded by :func:`garrison.loading.safe_load_onnx`, in the same order as
:mod:`garrison.gateway.local_models`, each step failing closed (a refusal stops the gateway from
starting, with the reason):

1. the file is opened once (a regular file, links resolved) and read whole; its digest is the SHA-256
   of exactly those bytes;
2. the signature is checked against that digest (``require_signature``, on by default);
3. the file is scanned with every detector, and refused on any finding of medium severity or above,
   on any scan error, and when the bytes scanned are not the bytes read in step 1;
4. the bytes in memory are checked again for custom operator domains, and refused if any tensor keeps
   its data in another file (the signature covers only the ``.onnx`` file);
5. those same bytes — never the path again — go to an ONNX Runtime session on the CPU with no
   custom-op library, no profiling and one intra-op thread.

Requests give features as the route's ``validation.features`` describe; the answer is
``{"predictions": rows}``: the model's first floating-point output (as probabilities when
``softmax: true``), else its labels, else its ZipMap probabilities in class order — so output controls
(label, top-k, rounding) apply as for any ML route. ``allow`` has no meaning for ONNX (it holds no
Python globals) and is ignored.

:func:`load_local_model` picks this loader for files whose content is ONNX, and
:class:`~garrison.gateway.local_models.LocalModel` for the rest.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from garrison.core.errors import ConfigError, GarrisonError
from garrison.gateway.local_models import LocalModel, LocalModelConfig
from garrison.loading import is_onnx_file

__all__ = ["OnnxLocalModel", "is_onnx_file", "load_local_model"]


def load_local_model(config: LocalModelConfig, *, where: str) -> LocalModel | OnnxLocalModel:
    """The loaded model of a ``kind: local`` route: ONNX files here, everything else by ``LocalModel``."""
    if is_onnx_file(config.path):
        return OnnxLocalModel.load(config, where=where)
    return LocalModel.load(config, where=where)


class OnnxLocalModel:
    """A verified, scanned ONNX model in a hardened ONNX Runtime session."""

    def __init__(
        self, config: LocalModelConfig, model: Any, *, digest: str, signature_verified: bool
    ) -> None:
        self.config = config
        self.model = model
        """The :class:`~garrison.assess.adapters_remote.OnnxModel` over the session."""
        self.digest = digest
        self.signature_verified = signature_verified

    @classmethod
    def load(cls, config: LocalModelConfig, *, where: str) -> OnnxLocalModel:
        """Verify, scan and load ``config.path``; a :class:`ConfigError` names why it was refused."""
        try:
            return cls._load(config)
        except GarrisonError as exc:
            raise ConfigError(
                f"{where}: the local model {config.path} was not loaded: {exc.message}", hint=exc.hint
            ) from None

    @classmethod
    def _load(cls, config: LocalModelConfig) -> OnnxLocalModel:
        from garrison.integrity.gate import SignaturePolicy, make_verifier
        from garrison.loading import safe_load_onnx

        verifier = None
        if config.key is not None or config.certs:
            policy = SignaturePolicy(
                require=config.require_signature,
                key=config.key,
                certs=config.certs,
                signature=config.signature,
            )
            verifier = make_verifier(policy)
        result = safe_load_onnx(
            config.path, allow_external=False, threads=1, require_signature=config.require_signature,
            verifier=verifier,
        )  # fmt: skip
        return cls(config, result.model, digest=result.digest, signature_verified=result.signature_verified)

    def predict(self, features: np.ndarray) -> dict[str, Any]:
        """``{"predictions": rows}``: the model's scores (or labels) per row."""
        from garrison.core.errors import InputError
        from garrison.gateway.types import Denied

        rows = features if features.ndim > 1 else features[np.newaxis]
        if rows.shape[0] > self.config.max_rows:
            raise Denied(413, "too_many_rows", public=f"at most {self.config.max_rows} rows per request")
        try:
            out = self.model.run(rows)
        except InputError:
            raise Denied(500, "local_model_error") from None
        kind: str = self.model.output_type
        if kind.startswith("seq(map("):
            keys = sorted(out[0]) if out else []
            scores = np.asarray([[row[k] for k in keys] for row in out], dtype=np.float64)
            return {"predictions": scores.tolist()}
        arr = np.asarray(out)
        if arr.dtype.kind != "f":
            return {"predictions": arr.reshape(len(rows), *arr.shape[1:]).tolist()}
        scores = arr.astype(np.float64).reshape(len(rows), -1)
        if self.config.softmax:
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
        return {"predictions": scores.tolist()}
