"""Local models behind the gateway: loaded only after their signature verifies and their scan is
clean, then served in process (``kind: local`` routes).

Loading goes through :func:`garrison.loading.safe_load_result`: the file is hashed once, its
signature is checked against that digest (``require_signature``, on by default; fail closed), the
file is scanned with every detector and refused on any finding of medium severity or above, and it
is unpickled with the restricted unpickler. A refusal stops the gateway from starting, with the
reason. What can be served:

- scikit-learn estimators (and pipelines) from pickle or joblib files: ``predict_proba`` where the
  estimator has it, else ``predict``;
- PyTorch modules saved whole, built from allowlisted classes (a state dict alone has no
  architecture and is refused with a hint): the module's outputs, as probabilities when
  ``softmax: true``.

Requests give features as the route's ``validation.features`` describe; the answer is
``{"predictions": [...]}``, so output controls (label, top-k, rounding) apply as for any ML route.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from garrison.core.errors import ConfigError


class LocalModelConfig(BaseModel):
    """``local:`` of a ``kind: local`` route."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="The model file.")
    require_signature: bool = Field(default=True, description="Refuse to load without a verified signature.")
    key: Path | None = Field(default=None, description="PEM public key the signature must verify with.")
    certs: tuple[Path, ...] = Field(
        default=(), description="CA certificates the signing certificate chains to."
    )
    signature: Path | None = Field(default=None, description="Signature file; default: beside the model.")
    allow: tuple[str, ...] = Field(
        default=(), description="Extra globals you trust (your own model classes)."
    )
    softmax: bool = Field(default=False, description="Turn a PyTorch module's logits into probabilities.")
    max_rows: int = Field(default=1024, ge=1, le=1_000_000, description="Most rows one request may send.")


class LocalModel:
    """A verified, scanned, loaded model and how to ask it for predictions."""

    def __init__(
        self, config: LocalModelConfig, model: Any, *, digest: str, signature_verified: bool
    ) -> None:
        self.config = config
        self.model = model
        self.digest = digest
        self.signature_verified = signature_verified
        self._torch = _is_torch_module(model)
        if not self._torch and not hasattr(model, "predict"):
            raise ConfigError(
                f"local model {config.path} is a {type(model).__name__}, which the gateway cannot serve",
                hint="serve a scikit-learn estimator or a whole PyTorch module (not a state dict)",
            )

    @classmethod
    def load(cls, config: LocalModelConfig, *, where: str) -> LocalModel:
        """Verify, scan and load ``config.path``; a :class:`ConfigError` names why it was refused."""
        from garrison.core.errors import GarrisonError
        from garrison.integrity.gate import SignaturePolicy, make_verifier
        from garrison.loading import safe_load_result

        verifier = None
        if config.require_signature or config.key is not None or config.certs:
            policy = SignaturePolicy(
                require=config.require_signature,
                key=config.key,
                certs=config.certs,
                signature=config.signature,
            )
            verifier = make_verifier(policy)
        try:
            result = safe_load_result(
                config.path, allow=config.allow, require_signature=config.require_signature, verifier=verifier
            )
        except GarrisonError as exc:
            raise ConfigError(
                f"{where}: the local model {config.path} was not loaded: {exc.message}", hint=exc.hint
            ) from None
        return cls(config, result.value, digest=result.digest, signature_verified=result.signature_verified)

    def predict(self, features: np.ndarray) -> dict[str, Any]:
        """``{"predictions": rows}``: class probabilities (or labels, or module outputs) per row."""
        rows = features if features.ndim > 1 else features[np.newaxis]
        if rows.shape[0] > self.config.max_rows:
            from garrison.gateway.types import Denied

            raise Denied(413, "too_many_rows", public=f"at most {self.config.max_rows} rows per request")
        if self._torch:
            return {"predictions": self._torch_predict(rows)}
        model = self.model
        if hasattr(model, "predict_proba"):
            return {"predictions": np.asarray(model.predict_proba(rows), dtype=np.float64).tolist()}
        return {"predictions": np.asarray(model.predict(rows)).tolist()}

    def _torch_predict(self, rows: np.ndarray) -> list[Any]:
        import torch

        with torch.no_grad():
            out = self.model(torch.as_tensor(rows, dtype=torch.float32))
            if self.config.softmax:
                out = torch.softmax(out, dim=-1)
        return out.numpy().astype(np.float64).tolist()  # type: ignore[no-any-return]


def _is_torch_module(model: Any) -> bool:
    try:
        import torch
    except ImportError:
        return False
    if isinstance(model, torch.nn.Module):
        model.eval()
        return True
    return False
