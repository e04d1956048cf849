"""The built-in detectors, listed in one place, and the default registry.

Built-ins are the ``DETECTORS`` tuples of their packages; third-party detectors arrive through the
``garrison.detectors`` entry-point group. Both are added through :meth:`Registry.add`.
"""

from __future__ import annotations

from garrison.core.registry import Detector, Registry

#: Retired rule ids and the ids that replaced them. Retired ids are never reused.
RULE_REDIRECTS: dict[str, str] = {}

MODEL_RULE_FAMILIES: tuple[str, ...] = (
    "GAR-PKL",
    "GAR-PT",
    "GAR-NPY",
    "GAR-KRS",
    "GAR-ONNX",
    "GAR-SFT",
    "GAR-GGUF",
    "GAR-TPL",
    "GAR-ARC",
    "GAR-SCAN",
    "GAR-FMT",
)
"""Rule families of the model supply-chain scan (``garrison scan model``): model formats, the
archives they come in, the engine's limits and the file inventory."""

DATA_RULE_FAMILIES: tuple[str, ...] = ("GAR-PII", "GAR-SEC", "GAR-DATA", "GAR-ARC", "GAR-SCAN")
"""Rule families of the dataset scan (``garrison scan data``): personal data, secrets, malformed
rows, and the archive and engine limits of the files that hold them."""


def builtin_detectors() -> tuple[type[Detector], ...]:
    """Every detector that ships with Garrison."""
    from garrison.data.detector import DETECTORS as DATA
    from garrison.inventory import DETECTORS as INVENTORY
    from garrison.supplychain.containers import DETECTORS as CONTAINERS
    from garrison.supplychain.gguf import DETECTORS as GGUF
    from garrison.supplychain.keras import DETECTORS as KERAS
    from garrison.supplychain.onnx import DETECTORS as ONNX
    from garrison.supplychain.pickle import DETECTORS as PICKLE
    from garrison.supplychain.safetensors import DETECTORS as SAFETENSORS
    from garrison.supplychain.templates import DETECTORS as TEMPLATES

    return (*INVENTORY, *PICKLE, *CONTAINERS, *KERAS, *ONNX, *SAFETENSORS, *GGUF, *TEMPLATES, *DATA)


def default_registry(*, plugins: bool = True) -> Registry:
    """A registry with the engine's rules, every built-in detector and, unless told not to, plugins."""
    from garrison.assess.extraction_rules import EXT_RULES
    from garrison.assess.inference_rules import AIN_RULES, INV_RULES
    from garrison.assess.privacy_rules import MIA_RULES
    from garrison.assess.rules import ADV_RULES
    from garrison.data.backdoor_rules import BACKDOOR_RULES
    from garrison.data.bias_rules import BIAS_RULES
    from garrison.data.label_rules import LABEL_RULES
    from garrison.data.schema_rules import SCHEMA_RULES
    from garrison.engine.rules import ENGINE_RULES
    from garrison.integrity.rules import INTEGRITY_RULES
    from garrison.llm.redteam import REDTEAM_RULES
    from garrison.llm.rules import LLM_RULES

    registry = Registry()
    registry.add_rules(ENGINE_RULES, owner="engine")
    registry.add_rules(INTEGRITY_RULES, owner="integrity")
    registry.add_rules(BIAS_RULES, owner="data.bias")
    registry.add_rules(SCHEMA_RULES, owner="data.schema")
    registry.add_rules(LABEL_RULES, owner="data.labels")
    registry.add_rules(BACKDOOR_RULES, owner="data.backdoor")
    registry.add_rules(LLM_RULES, owner="llm")
    registry.add_rules(REDTEAM_RULES, owner="llm.redteam")
    registry.add_rules(ADV_RULES, owner="assess.evasion")
    registry.add_rules(EXT_RULES, owner="assess.extraction")
    registry.add_rules(MIA_RULES, owner="assess.privacy")
    registry.add_rules(AIN_RULES, owner="assess.attribute")
    registry.add_rules(INV_RULES, owner="assess.inversion")
    for detector in builtin_detectors():
        registry.add(detector)
    for old, new in RULE_REDIRECTS.items():
        registry.add_redirect(old, new)
    if plugins:
        registry.load_entry_points()
    return registry
