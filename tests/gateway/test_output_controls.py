"""Output controls: label only, top-k and rounding over common response shapes; unknown ones fail closed."""

from __future__ import annotations

from typing import Any

import pytest

from garrison.gateway.output_controls import (
    OutputPolicy,
    apply_output_policy,
    policy_for,
    predicted_classes,
    run_output_scanners,
)
from garrison.gateway.types import Denied, Outcome

ROWS = [[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]
LABEL = OutputPolicy(mode="label")
TOP2 = OutputPolicy(mode="top_k", k=2)
ROUND1 = OutputPolicy(mode="round", decimals=1)
NAMED = OutputPolicy(mode="label", class_names=("cat", "dog", "eel"))


def refused(policy: OutputPolicy, response: Any) -> tuple[int, str]:
    with pytest.raises(Denied) as info:
        apply_output_policy(policy, response)
    return info.value.status, info.value.reason


@pytest.mark.parametrize("key", ["predictions", "probabilities", "scores"])
def test_label_only(key: str) -> None:
    assert apply_output_policy(LABEL, {key: ROWS, "model_version": "3"}) == {
        key: [1, 0],
        "model_version": "3",
    }
    assert apply_output_policy(NAMED, {key: ROWS}) == {key: ["dog", "cat"]}


def test_plain_list() -> None:
    assert apply_output_policy(LABEL, ROWS) == [1, 0]
    assert apply_output_policy(ROUND1, [[0.123, 0.877]]) == [[0.1, 0.9]]


def test_top_k_pairs_best_first() -> None:
    assert apply_output_policy(TOP2, {"predictions": ROWS}) == {
        "predictions": [[[1, 0.7], [2, 0.2]], [[0, 0.5], [2, 0.3]]]
    }
    named = OutputPolicy(mode="top_k", k=1, decimals=0, class_names=("cat", "dog", "eel"))
    assert apply_output_policy(named, ROWS) == [[["dog", 1.0]], [["cat", 0.0]]]
    assert apply_output_policy(OutputPolicy(mode="top_k", k=10), [[0.4, 0.6]]) == [[[1, 0.6], [0, 0.4]]]


def test_round() -> None:
    assert apply_output_policy(ROUND1, {"probabilities": [[0.14, 0.86]]}) == {"probabilities": [[0.1, 0.9]]}
    # regression outputs or one binary probability per row can be rounded, never turned into labels
    assert apply_output_policy(ROUND1, {"predictions": [0.26, 3.14159]}) == {"predictions": [0.3, 3.1]}


def test_integer_labels_pass_through() -> None:
    assert apply_output_policy(LABEL, {"predictions": [2, 0, 1]}) == {"predictions": [2, 0, 1]}
    assert apply_output_policy(TOP2, [2, 0]) == [2, 0]


def test_full_is_untouched() -> None:
    weird = {"logits": [[1e9]], "anything": object}
    assert apply_output_policy(OutputPolicy(mode="full"), weird) is weird


def test_kserve_v2() -> None:
    response = {
        "model_name": "m",
        "id": "r1",
        "parameters": {"leak": [0.123456]},
        "outputs": [
            {"name": "probs", "shape": [2, 3], "datatype": "FP32", "data": [0.1, 0.7, 0.2, 0.5, 0.2, 0.3]},
            {"name": "label", "shape": [2], "datatype": "INT64", "data": [1, 0]},
        ],
    }
    labelled = apply_output_policy(LABEL, response)
    assert labelled == {
        "model_name": "m",
        "id": "r1",
        "outputs": [
            {"name": "probs", "shape": [2], "datatype": "INT64", "data": [1, 0]},
            {"name": "label", "shape": [2], "datatype": "INT64", "data": [1, 0]},
        ],
    }
    top = apply_output_policy(TOP2, response)["outputs"]
    assert top[0] == {"name": "probs", "shape": [2, 2], "datatype": "FP32", "data": [0.7, 0.2, 0.5, 0.3]}
    assert top[1] == {"name": "probs_indices", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 0, 2]}
    rounded = apply_output_policy(ROUND1, response)["outputs"][0]
    assert rounded["data"] == [0.1, 0.7, 0.2, 0.5, 0.2, 0.3]
    assert apply_output_policy(NAMED, response)["outputs"][0]["data"] == ["dog", "cat"]


UNAPPLIABLE = [
    ("unknown key beside predictions", LABEL, {"predictions": ROWS, "logits": ROWS}),
    ("no scores at all", LABEL, {"result": ROWS}),
    ("string body", LABEL, "0.7"),
    ("binary probability per row", LABEL, {"predictions": [0.2, 0.9]}),
    ("single-column rows", TOP2, [[0.2], [0.9]]),
    ("ragged rows", LABEL, [[0.1, 0.9], [0.5]]),
    ("strings in rows", LABEL, [["0.1", "0.9"]]),
    ("empty", LABEL, []),
    ("class name missing", NAMED, [[0.1, 0.1, 0.1, 0.7]]),
    (
        "kserve shape lies",
        LABEL,
        {"outputs": [{"name": "p", "shape": [1, 3], "datatype": "FP32", "data": [0.5, 0.5]}]},
    ),
    ("kserve bytes", LABEL, {"outputs": [{"name": "p", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}),
    (
        "kserve 1-D floats",
        LABEL,
        {"outputs": [{"name": "p", "shape": [2], "datatype": "FP32", "data": [0.5, 0.2]}]},
    ),
    ("kserve unknown key", LABEL, {"outputs": [], "debug": ROWS}),
    ("kserve outputs not a list", LABEL, {"outputs": {"p": ROWS}}),
]


@pytest.mark.parametrize(
    ("policy", "response"), [c[1:] for c in UNAPPLIABLE], ids=[c[0] for c in UNAPPLIABLE]
)
def test_unknown_shapes_fail_closed(policy: OutputPolicy, response: Any) -> None:
    assert refused(policy, response) == (502, "output_policy_unappliable")


def test_predicted_classes_for_the_extraction_monitor() -> None:
    kserve = {
        "outputs": [
            {"name": "p", "shape": [2, 3], "datatype": "FP32", "data": [0.1, 0.7, 0.2, 0.5, 0.2, 0.3]}
        ]
    }
    for response in (
        ROWS,
        {"predictions": ROWS},
        {"probabilities": ROWS, "id": "x"},
        kserve,
        {"predictions": [1, 0]},
    ):
        assert predicted_classes(response) is not None
        assert predicted_classes(response).tolist() == [1, 0]  # type: ignore[union-attr]
    for response in (
        {"result": ROWS},
        "text",
        [0.2, 0.8],
        {"outputs": [{"shape": [1, 2], "data": ["a", "b"]}]},
    ):
        assert predicted_classes(response) is None


def test_round_mode_needs_decimals() -> None:
    with pytest.raises(ValueError, match="decimals"):
        OutputPolicy(mode="round")


def test_policy_for_roles_takes_the_most_permissive() -> None:
    by_role = {"public": LABEL, "partner": TOP2, "analyst": ROUND1, "owner": OutputPolicy(mode="full")}
    assert policy_for({"public"}, by_role, LABEL) is LABEL
    assert policy_for({"public", "partner"}, by_role, LABEL) is TOP2
    assert policy_for({"partner", "analyst"}, by_role, LABEL) is ROUND1
    assert policy_for({"owner", "public"}, by_role, LABEL).mode == "full"
    assert policy_for({"stranger"}, by_role, LABEL) is LABEL
    finer = OutputPolicy(mode="round", decimals=3)
    assert policy_for({"a", "b"}, {"a": ROUND1, "b": finer}, LABEL) is finer


# --- output scanners --------------------------------------------------------------------------------


class Redactor:
    name = "digits"

    def scan(self, text: str) -> tuple[Outcome, str]:
        masked = "".join("#" if c.isdigit() else c for c in text)
        return (Outcome.REDACT if masked != text else Outcome.ALLOW), masked


class Canary:
    name = "canary"

    def scan(self, text: str) -> tuple[Outcome, str]:
        return (Outcome.DENY if "CANARY-7f3a" in text else Outcome.ALLOW), text


class Liar:
    name = "liar"

    def scan(self, text: str) -> tuple[Outcome, str]:
        return Outcome.ALLOW, text.upper()


class Crasher:
    name = "crash"

    def scan(self, text: str) -> tuple[Outcome, str]:
        raise RuntimeError("boom")


def test_scanners_chain_and_record_decisions() -> None:
    result = run_output_scanners([Redactor(), Canary()], "card 4111 ok")
    assert result.text == "card #### ok"
    assert [(d.step, d.outcome) for d in result.decisions] == [
        ("output.digits", Outcome.REDACT),
        ("output.canary", Outcome.ALLOW),
    ]


@pytest.mark.parametrize(
    ("scanner", "reason"),
    [(Canary(), "output.canary"), (Liar(), "output.liar:failed"), (Crasher(), "output.crash:failed")],
)
def test_scanner_deny_and_failure_close_the_response(scanner: Any, reason: str) -> None:
    with pytest.raises(Denied) as info:
        run_output_scanners([scanner], "leak CANARY-7f3a")
    assert (info.value.status, info.value.reason) == (502, reason)
