"""LLM guardrails: scanners for prompts, documents and model output.

- :func:`~garrison.llm.api.scan_input` and :func:`~garrison.llm.api.scan_output`: every input and
  output scanner a policy turns on, with one aggregate verdict;
- :class:`~garrison.llm.streaming.StreamScanner`: output scanning of a stream of deltas;
- :class:`~garrison.llm.injection.InjectionDetector`: the trained prompt-injection detector.

The detector's own two-way verdict is ``garrison.llm.injection.Verdict``; the scanners' three-way one
(allow, flag, block) is ``garrison.llm.scanners.Verdict``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from garrison.llm.injection import InjectionDetector, InjectionResult

__all__ = ["InjectionDetector", "InjectionResult"]


def __getattr__(name: str) -> Any:
    # The detector loads numpy and its weights: only when someone asks for it, not on every import
    # of a ``garrison.llm`` module (the scan registers the LLM rules without running them).
    if name in __all__:
        from garrison.llm import injection

        value = getattr(injection, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'garrison.llm' has no attribute {name!r}")
