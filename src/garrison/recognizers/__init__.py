"""PII and secret recognizers over text, shared by data security, the LLM scanners and the gateway.

``pii`` is the entry point (:class:`~garrison.recognizers.pii.Scanner`); the other modules hold the
recognizer families (numbers with checksums, secrets, context cues, plain-text patterns) and the
plugin loader for optional NER backends.
"""
