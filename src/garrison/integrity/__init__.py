"""Integrity: encryption at rest for model and dataset files, and file manifests.

Each concern is its own module (``crypto`` for the streaming encryption format, ``crypto_keys``
for the key-encryption-key providers, ``manifest`` for manifests); import from those modules.
This package imports nothing on its own, so loading one part never pulls in another.
"""
