"""An out-of-distribution detector fitted with ``garrison assess detector`` guards an ML route:
inputs like the training data pass, inputs far from it are refused (or flagged)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris
from tests.gateway.harness import UpstreamStub, base_config, http, running

from garrison.cli.main import main


def test_an_ml_route_refuses_out_of_distribution_inputs(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    np.savez(tmp_path / "iris.npz", x=x, y=y)
    assert (
        main(
            [
                "assess",
                "detector",
                "--data",
                str(tmp_path / "iris.npz"),
                "--output",
                str(tmp_path / "ood.npz"),
            ]
        )
        == 0
    )
    upstream = UpstreamStub().start()
    try:
        config = base_config(upstream.port, tmp_path)
        config["detectors"] = {"iris-ood": {"path": str(tmp_path / "ood.npz")}}
        config["routes"][1]["validation"]["detector"] = "iris-ood"
        with running(config, tmp_path, {"scorer": ["scorer"]}) as gateway:
            key = gateway.keys["scorer"]
            typical = {"inputs": [x[0].tolist(), x[70].tolist(), x[140].tolist()]}
            status, _, body = http(gateway.port, "POST", "/predict", body=typical, key=key)
            assert status == 200, body
            strange = {"inputs": [[7.9, 0.5, 0.5, 2.5]]}  # inside the route's 0..10 range, far from any iris
            status, headers, body = http(gateway.port, "POST", "/predict", body=strange, key=key)
            assert status == 422
            assert json.loads(body)["error"]["code"] == 422
            wanted = headers["x-garrison-request-id"]
            deadline = time.monotonic() + 10
            events = []
            while not events and time.monotonic() < deadline:
                events = [e for e in gateway.events() if e.id == wanted]
                time.sleep(0.05)
            assert events[0].data["decisions"][-1]["reason"] == "input_detector:iris-ood"
    finally:
        upstream.stop()
