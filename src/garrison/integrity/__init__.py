"""Integrity: manifests, signing and verification, dataset digests, change detection, encryption at rest.

Each concern is its own module: ``manifest`` (digests of files and shards), ``datasets`` (row-level
digests of dataset files), ``statement``, ``signing_keys`` and ``bundle`` (the OpenSSF
model-signing format), ``signing`` (sign and verify a tree), ``verify_report`` (findings, events,
text), ``gate`` (``verify_before_load``), ``watch`` (change detection), ``rules``, and ``crypto``,
``crypto_keys``, ``crypto_files`` (encryption at rest); import from those modules. This package
imports nothing on its own, so loading one part never pulls in another.
"""
