"""The ``garrison.kms`` plugin interface, exercised through Garrison's own ``local`` plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from garrison.integrity.crypto_keys import (
    KeyProviderError,
    KeyringProvider,
    provider_from_spec,
    rotate_keyring,
)


def test_local_plugin_is_registered_and_found_by_name(tmp_path: Path) -> None:
    assert "local" in {e.name for e in entry_points(group="garrison.kms")}
    rotate_keyring(tmp_path / "ring")
    provider = provider_from_spec(f"local:{tmp_path / 'ring'}")
    assert isinstance(provider, KeyringProvider)
    with pytest.raises(KeyProviderError, match="needs the keyring directory"):
        provider_from_spec("local:")
    with pytest.raises(KeyProviderError, match="no key provider named 'cloudkms'"):
        provider_from_spec("cloudkms:projects/x")


def test_encrypt_with_the_plugin_rotate_and_decrypt(tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(300_000))

    def garrison(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "garrison", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert garrison("kek", "rotate", str(ring)).returncode == 0
    done = garrison("encrypt", str(model), "--key", f"local:{ring}")
    assert done.returncode == 0, done.stderr
    assert garrison("kek", "rotate", str(ring)).returncode == 0
    done = garrison("rewrap", f"{model}.gar", "--from", f"local:{ring}")
    assert done.returncode == 0, done.stderr
    (ring / "v1.key").unlink()  # every file now wrapped under v2
    done = garrison("decrypt", f"{model}.gar", "-o", str(tmp_path / "plain"), "--key", f"local:{ring}")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "plain").read_bytes() == model.read_bytes()
