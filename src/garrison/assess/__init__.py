"""Model risk assessment: run standard attacks against a user's model and measure what they achieve.

This package holds the model adapters (:mod:`garrison.assess.adapters`), the evasion attacks
(:mod:`garrison.assess.evasion` and the modules it draws on) and their results
(:mod:`garrison.assess.results`). A plain PyTorch ``nn.Module`` or scikit-learn estimator and numpy or
torch arrays are enough: the class count is read from the first forward pass, the input shape from
the data, and the valid input range from the data unless declared.

    from garrison.assess import run_evasion
    report = run_evasion(model, x, y, attacks=["fgsm", "pgd", "apgd-ce", "cw-l2"], epsilons=[0.1, 0.3])
    for result in report.results:
        print(result.attack, result.epsilon, result.robust_accuracy)

The attacks need PyTorch (``pip install 'garrison[torch]'``); it is imported only when an attack or a
PyTorch model is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from garrison.assess.adapters import (
        GradientUnavailableError,
        ModelAdapter,
        OutputKind,
        SklearnModel,
        TorchModel,
        as_model,
    )
    from garrison.assess.adapters_http import EndpointError, HttpModel, QueryBudgetExceededError
    from garrison.assess.adapters_onnx import OnnxModel, OnnxRefusedError
    from garrison.assess.adapters_remote import remote_model
    from garrison.assess.evasion import (
        APGD,
        FGSM,
        PGD,
        APGDTargeted,
        AttackSpec,
        AutoAttack,
        CarliniWagnerL2,
        FABTargeted,
        HopSkipJump,
        SquareAttack,
        attack_from_name,
        run_attack,
        run_evasion,
    )
    from garrison.assess.extraction import ExtractionPoint, ExtractionReport, run_extraction
    from garrison.assess.extraction_rules import ExtractionThresholds, extraction_findings
    from garrison.assess.findings import EvasionThresholds, evasion_findings
    from garrison.assess.hardening import (
        AdversarialTrainingHistory,
        EpochStats,
        HardenedOutputs,
        adversarial_training,
        harden_outputs,
    )
    from garrison.assess.hardening_dp import DPTrainingReport, train_dp
    from garrison.assess.inference_rules import (
        AttributeThresholds,
        InversionThresholds,
        attribute_findings,
        inversion_findings,
    )
    from garrison.assess.inversion import (
        ClassReconstruction,
        InversionReport,
        run_model_inversion,
        score_reconstructions,
    )
    from garrison.assess.privacy import MembershipReport, MembershipResult, run_membership
    from garrison.assess.privacy_attribute import (
        AttributeInferenceReport,
        AttributeInferenceResult,
        run_attribute_inference,
    )
    from garrison.assess.privacy_rules import MembershipThresholds, membership_findings
    from garrison.assess.results import AttackOutcome, AttackResult, EvasionReport, ModelInfo

# Names resolve on first use: ``garrison.assess.rules`` (registered by every scan) must not pull in
# numpy, which only the attacks need.
_EXPORTS: dict[str, str] = {
    "AutoAttack": "evasion",
    "FABTargeted": "evasion",
    "APGDTargeted": "evasion",
    "train_dp": "hardening_dp",
    "harden_outputs": "hardening",
    "adversarial_training": "hardening",
    "HardenedOutputs": "hardening",
    "EpochStats": "hardening",
    "DPTrainingReport": "hardening_dp",
    "AdversarialTrainingHistory": "hardening",
    "inversion_findings": "inference_rules",
    "attribute_findings": "inference_rules",
    "InversionThresholds": "inference_rules",
    "AttributeThresholds": "inference_rules",
    "score_reconstructions": "inversion",
    "run_model_inversion": "inversion",
    "InversionReport": "inversion",
    "ClassReconstruction": "inversion",
    "run_attribute_inference": "privacy_attribute",
    "AttributeInferenceResult": "privacy_attribute",
    "AttributeInferenceReport": "privacy_attribute",
    "remote_model": "adapters_remote",
    "QueryBudgetExceededError": "adapters_http",
    "OnnxRefusedError": "adapters_onnx",
    "OnnxModel": "adapters_onnx",
    "HttpModel": "adapters_http",
    "EndpointError": "adapters_http",
    "APGD": "evasion",
    "AttackOutcome": "results",
    "AttackResult": "results",
    "AttackSpec": "evasion",
    "CarliniWagnerL2": "evasion",
    "EvasionReport": "results",
    "EvasionThresholds": "findings",
    "ExtractionPoint": "extraction",
    "ExtractionReport": "extraction",
    "ExtractionThresholds": "extraction_rules",
    "FGSM": "evasion",
    "GradientUnavailableError": "adapters",
    "HopSkipJump": "evasion",
    "ModelAdapter": "adapters",
    "MembershipReport": "privacy",
    "MembershipResult": "privacy",
    "MembershipThresholds": "privacy_rules",
    "ModelInfo": "results",
    "OutputKind": "adapters",
    "PGD": "evasion",
    "SklearnModel": "adapters",
    "SquareAttack": "evasion",
    "TorchModel": "adapters",
    "as_model": "adapters",
    "attack_from_name": "evasion",
    "evasion_findings": "findings",
    "extraction_findings": "extraction_rules",
    "membership_findings": "privacy_rules",
    "run_attack": "evasion",
    "run_evasion": "evasion",
    "run_extraction": "extraction",
    "run_membership": "privacy",
}

__all__ = [
    "APGD",
    "FGSM",
    "PGD",
    "APGDTargeted",
    "AdversarialTrainingHistory",
    "AttackOutcome",
    "AttackResult",
    "AttackSpec",
    "AttributeInferenceReport",
    "AttributeInferenceResult",
    "AttributeThresholds",
    "AutoAttack",
    "CarliniWagnerL2",
    "ClassReconstruction",
    "DPTrainingReport",
    "EndpointError",
    "EpochStats",
    "EvasionReport",
    "EvasionThresholds",
    "ExtractionPoint",
    "ExtractionReport",
    "ExtractionThresholds",
    "FABTargeted",
    "GradientUnavailableError",
    "HardenedOutputs",
    "HopSkipJump",
    "HttpModel",
    "InversionReport",
    "InversionThresholds",
    "MembershipReport",
    "MembershipResult",
    "MembershipThresholds",
    "ModelAdapter",
    "ModelInfo",
    "OnnxModel",
    "OnnxRefusedError",
    "OutputKind",
    "QueryBudgetExceededError",
    "SklearnModel",
    "SquareAttack",
    "TorchModel",
    "adversarial_training",
    "as_model",
    "attack_from_name",
    "attribute_findings",
    "evasion_findings",
    "extraction_findings",
    "harden_outputs",
    "inversion_findings",
    "membership_findings",
    "remote_model",
    "run_attack",
    "run_attribute_inference",
    "run_evasion",
    "run_extraction",
    "run_membership",
    "run_model_inversion",
    "score_reconstructions",
    "train_dp",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'garrison.assess' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"garrison.assess.{module}"), name)
    globals()[name] = value
    return value
