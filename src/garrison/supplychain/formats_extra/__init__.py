"""Helpers shared by the Keras, ONNX, safetensors, GGUF and chat-template scanners.

Nothing here executes what it reads: JSON is parsed strictly and within limits, marshalled Python
code is walked by a hand-written reader that builds no code objects, and findings are built the
same way by every scanner.
"""
