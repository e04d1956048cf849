"""LLM guardrails: scanners for prompts, documents and model output.

So far: the first stage of the prompt-injection and jailbreak detector
(:class:`~garrison.llm.injection.InjectionDetector`).
"""

from __future__ import annotations

from garrison.llm.injection import InjectionDetector, InjectionResult, Verdict

__all__ = ["InjectionDetector", "InjectionResult", "Verdict"]
