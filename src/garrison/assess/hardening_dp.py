"""Differentially private training with Opacus: the recipe :mod:`garrison.assess.hardening` measures.

:func:`train_dp` trains a copy of a PyTorch module with DP-SGD (per-example clipping to
``max_grad_norm``, Gaussian noise, Poisson sampling); the noise multiplier is chosen by Opacus so that
``epochs`` passes spend ``target_epsilon`` at ``delta`` (as ``make_private_with_epsilon`` does, cached
per recipe because the search is slow), and the report carries the ε Opacus' accountant (PRV by
default, or RDP) computes for the steps actually taken. ε is per record (example-level DP), not per
user. Opacus is imported only when :func:`train_dp` runs (``pip install 'garrison[dp]'``).
"""

from __future__ import annotations

import copy
import functools
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

from garrison.assess.adapters import require_torch
from garrison.assess.hardening import positive, rng_devices, training_arrays
from garrison.core.errors import ConfigError, GarrisonError, InputError, MissingExtraError

__all__ = ["OPACUS_VERSION", "DPTrainingReport", "train_dp"]

OPACUS_VERSION = "1.6.0"
"""The Opacus release :func:`train_dp` is tested with (the newest that supports torch 2.13)."""

# Opacus and torch warn on every DP run about things the recipe already documents.
_DP_WARNINGS = (
    r"Secure RNG turned off",
    r"Optimal order is the (largest|smallest) alpha",
    r"Full backward hook is firing",
    r"Using a non-full backward hook",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DPTrainingReport:
    """What :func:`train_dp` spent and how."""

    epsilon: float
    """ε the accountant computes for the steps taken, at :attr:`delta` (``inf``: trained without DP)."""
    target_epsilon: float
    """ε asked for."""
    delta: float
    """δ of the guarantee (per record)."""
    noise_multiplier: float
    """Gaussian noise standard deviation, in units of :attr:`max_grad_norm` (0 without DP)."""
    max_grad_norm: float
    """Per-example gradient clipping bound (L2 over all parameters); not applied without DP."""
    sample_rate: float
    """Chance that a record is in a batch: Opacus' Poisson rate ``1 / ceil(len(x) / batch_size)``
    (without DP, ``batch_size / len(x)``)."""
    steps: int
    """Optimizer steps taken."""
    epochs: int
    """Passes over the data (in expectation, with Poisson sampling)."""
    accountant: str
    """Opacus' accountant: ``prv`` or ``rdp`` (``none`` without DP)."""
    opacus_version: str
    """The Opacus release used (empty without DP)."""
    final_loss: float
    """Mean training loss of the last epoch's batches."""
    seconds: float
    """Wall-clock time of the training."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (an infinite ε is written as the string ``"inf"``)."""
        return {
            "epsilon": self.epsilon if math.isfinite(self.epsilon) else "inf",
            "target_epsilon": self.target_epsilon if math.isfinite(self.target_epsilon) else "inf",
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.max_grad_norm,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "epochs": self.epochs,
            "accountant": self.accountant,
            "opacus_version": self.opacus_version,
            "final_loss": self.final_loss,
            "seconds": self.seconds,
        }


def _require_opacus() -> Any:
    try:
        import opacus  # type: ignore[import-untyped]
    except ImportError as exc:
        error = MissingExtraError("differentially private training", extra="dev", module="opacus")
        error.hint = f"pip install opacus=={OPACUS_VERSION}"
        raise error from exc
    return opacus


def _check_dp_args(
    target_epsilon: float,
    delta: float,
    epochs: int,
    batch_size: int,
    lr: float,
    max_grad_norm: float,
    accountant: str,
    n: int,
) -> None:
    positive("target_epsilon", target_epsilon)
    positive("epochs", epochs, integer=True)
    positive("batch_size", batch_size, integer=True)
    positive("lr", lr)
    positive("max_grad_norm", max_grad_norm)
    if isinstance(delta, bool) or not isinstance(delta, int | float) or not 0.0 < delta < 1.0:
        raise ConfigError(f"delta must be a number strictly between 0 and 1, not {delta!r}")
    if accountant not in ("prv", "rdp"):
        raise ConfigError(f"unknown accountant {accountant!r}", hint="use 'prv' or 'rdp'")
    if math.isfinite(target_epsilon) and delta >= 1.0 / n:
        raise ConfigError(
            f"delta {delta:g} is not below 1/n = {1.0 / n:.3g}: such a guarantee allows leaking a record",
            hint="use delta well below 1/len(x), e.g. 1e-5",
        )


@functools.lru_cache(maxsize=256)
def _noise_multiplier(
    target_epsilon: float, delta: float, sample_rate: float, epochs: int, accountant: str
) -> float:
    """Opacus' calibration of the noise to ``(target_epsilon, delta)``, memoized: the search costs seconds,
    and shadow models trained with one recipe all need the same answer."""
    from opacus.accountants.utils import get_noise_multiplier  # type: ignore[import-untyped]

    return float(
        get_noise_multiplier(
            target_epsilon=target_epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            epochs=epochs,
            accountant=accountant,
        )
    )


@functools.lru_cache(maxsize=256)
def _epsilon_spent(accountant: str, history: tuple[tuple[float, float, int], ...], delta: float) -> float:
    """ε of a run whose accountant recorded ``history`` (noise, sample rate, steps), memoized."""
    from opacus.accountants import create_accountant  # type: ignore[import-untyped]

    fresh = create_accountant(accountant)
    fresh.history = list(history)
    return float(fresh.get_epsilon(delta))


def _make_private(
    model: Any,
    opt: Any,
    loader: Any,
    *,
    target_epsilon: float,
    delta: float,
    epochs: int,
    max_grad_norm: float,
    accountant: str,
    noise_generator: Any,
) -> tuple[Any, Any, Any, Any, str]:
    """Opacus' engine, wrapped module, DP optimizer, Poisson loader and version.

    The same as ``PrivacyEngine.make_private_with_epsilon`` (noise calibrated with Opacus'
    ``get_noise_multiplier`` at sample rate ``1 / len(loader)`` for ``epochs`` with the engine's
    accountant, then ``make_private``), with the calibration memoized.
    """
    opacus = _require_opacus()
    from opacus.validators import ModuleValidator  # type: ignore[import-untyped]

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise GarrisonError(
            f"Opacus cannot train {type(model).__name__} privately: {errors[0]}",
            hint="replace BatchNorm with GroupNorm (opacus.validators.ModuleValidator.fix)",
        )
    engine = opacus.PrivacyEngine(accountant=accountant)
    sigma = _noise_multiplier(
        float(target_epsilon), float(delta), 1.0 / len(loader), epochs, engine.accountant.mechanism()
    )
    wrapped, dp_opt, dp_loader = engine.make_private(
        module=model,
        optimizer=opt,
        data_loader=loader,
        noise_multiplier=sigma,
        max_grad_norm=float(max_grad_norm),
        noise_generator=noise_generator,
    )
    return engine, wrapped, dp_opt, dp_loader, str(getattr(opacus, "__version__", ""))


def _sgd_epochs(model: Any, opt: Any, loader: Any, epochs: int) -> tuple[int, float]:
    """Train; returns the optimizer steps taken and the last epoch's mean loss."""
    torch = require_torch("differentially private training")
    steps = 0
    last_loss = math.nan
    for _ in range(epochs):
        model.train()
        total, count = 0.0, 0
        for xb, yb in loader:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            steps += 1
            if len(xb):  # Poisson sampling may draw an empty batch: a step of noise only
                total += float(loss.detach()) * len(xb)
                count += len(xb)
        last_loss = total / max(count, 1)
    return steps, last_loss


def train_dp(
    module: Any,
    x: Any,
    y: Any,
    *,
    target_epsilon: float,
    delta: float,
    epochs: int,
    batch_size: int,
    lr: float,
    max_grad_norm: float,
    seed: int,
    accountant: str = "prv",
) -> tuple[Any, DPTrainingReport]:
    """DP-SGD training of a copy of ``module`` with Opacus; returns it (a plain module, eval mode) and
    the privacy spent.

    The noise multiplier is Opacus' calibration for ``(target_epsilon, delta)``, exactly as
    ``PrivacyEngine.make_private_with_epsilon`` computes it (memoized per recipe, so shadow models
    trained alike do not repeat the search), over ``epochs`` passes with Poisson sampling at rate
    about ``batch_size / len(x)``; per-example gradients are clipped to ``max_grad_norm``; the optimizer is
    SGD with ``lr`` (no momentum). ``accountant`` is Opacus' ``prv`` (tighter) or ``rdp``. The
    reported ε is the accountant's for the steps actually taken. ``target_epsilon=math.inf`` trains
    the same way without clipping, noise or accounting (the non-private baseline; shuffled batches).
    The module must be one Opacus supports (no BatchNorm: use GroupNorm). Deterministic for a given
    ``seed`` on CPU; the caller's module and the global random state are left as they were.
    """
    torch = require_torch("differentially private training")
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"DP training needs a torch.nn.Module, not {type(module).__name__}")
    xa, ya = training_arrays(x, y)
    _check_dp_args(target_epsilon, delta, epochs, batch_size, lr, max_grad_norm, accountant, len(xa))
    private = math.isfinite(target_epsilon)
    model = copy.deepcopy(module)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InputError(f"{type(module).__name__} has no trainable parameters")
    device = params[0].device
    dataset = torch.utils.data.TensorDataset(
        torch.as_tensor(xa).to(device, params[0].dtype), torch.as_tensor(ya).to(device)
    )
    batch_size = min(batch_size, len(xa))
    start = time.perf_counter()
    with torch.random.fork_rng(devices=rng_devices(model)), warnings.catch_warnings():
        for pattern in _DP_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        torch.manual_seed(seed)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
        opt = torch.optim.SGD(params, lr=lr)
        engine, trained, noise, version = None, model, 0.0, ""
        sample_rate = batch_size / len(xa)
        if private:
            engine, trained, opt, loader, version = _make_private(
                model,
                opt,
                loader,
                target_epsilon=target_epsilon,
                delta=delta,
                epochs=epochs,
                max_grad_norm=max_grad_norm,
                accountant=accountant,
                noise_generator=torch.Generator(device=device).manual_seed(seed + 1),
            )
            noise = float(opt.noise_multiplier)
            sample_rate = float(loader.sample_rate)
        steps, last_loss = _sgd_epochs(trained, opt, loader, epochs)
        spent = math.inf
        if engine is not None:
            history = tuple((float(n), float(q), int(k)) for n, q, k in engine.accountant.history)
            spent = _epsilon_spent(engine.accountant.mechanism(), history, float(delta))
            trained = trained.to_standard_module()
    trained.eval()
    report = DPTrainingReport(
        epsilon=spent,
        target_epsilon=float(target_epsilon),
        delta=float(delta),
        noise_multiplier=noise,
        max_grad_norm=float(max_grad_norm),
        sample_rate=sample_rate,
        steps=steps,
        epochs=epochs,
        accountant=accountant if private else "none",
        opacus_version=version,
        final_loss=last_loss,
        seconds=time.perf_counter() - start,
    )
    return trained, report
