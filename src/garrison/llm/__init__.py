"""LLM guardrails: scanners for prompts, documents and model output.

- :func:`~garrison.llm.api.scan_input` and :func:`~garrison.llm.api.scan_output`: every input and
  output scanner a policy turns on, with one aggregate verdict;
- :class:`~garrison.llm.streaming.StreamScanner`: output scanning of a stream of deltas;
- :class:`~garrison.llm.injection.InjectionDetector`: the trained prompt-injection detector.

The detector's own two-way verdict is ``garrison.llm.injection.Verdict``; the scanners' three-way one
(allow, flag, block) is ``garrison.llm.scanners.Verdict``.
"""

from __future__ import annotations

from garrison.llm.injection import InjectionDetector, InjectionResult

__all__ = ["InjectionDetector", "InjectionResult"]
