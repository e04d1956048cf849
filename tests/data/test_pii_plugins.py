"""Plugged-in PII recognizers: the built-in word list, entry-point plugins, and fail-closed checks."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from garrison.core.errors import ConfigError, InputError
from garrison.recognizers.pii_plugins import WordListRecognizer, find_with, load_recognizer, load_recognizers
from garrison.recognizers.pii_types import Entity, Match


def _terms(found: list[Match], text: str) -> list[tuple[str, str]]:
    return [(text[m.start : m.end], m.entity.value) for m in found]


def test_word_list_matches_whole_words_case_insensitively(tmp_path: Path) -> None:
    names = tmp_path / "staff.txt"
    names.write_text(
        "# staff directory\nAda Lovelace\nLovelace\nGrace\n"
        "email\tops-team@example.org\n\npostal-address\t12 Rue Cler\n",
        encoding="utf-8",
    )
    recognizer = load_recognizer(f"wordlist:{names}")
    assert recognizer.entities == {Entity.PERSON_NAME, Entity.EMAIL, Entity.POSTAL_ADDRESS}
    text = "ADA LOVELACE met grace at 12 rue Cler; Graceful Lovelaces; write to ops-team@example.org."
    assert _terms(find_with([recognizer], text), text) == [
        ("ADA LOVELACE", "person-name"),  # the longest term wins at a position
        ("grace", "person-name"),
        ("12 rue Cler", "postal-address"),
        ("ops-team@example.org", "email"),
    ]  # "Graceful" and "Lovelaces" are other words


def test_word_list_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a file"):
        load_recognizer("wordlist")
    with pytest.raises(ConfigError, match="not found"):
        load_recognizer(f"wordlist:{tmp_path / 'missing.txt'}")
    bad = tmp_path / "bad.txt"
    bad.write_text("nickname\tAda\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.txt:1: unknown entity 'nickname'"):
        load_recognizer(f"wordlist:{bad}")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_recognizer(f"wordlist:{binary}")
    with pytest.raises(ConfigError, match="more than 5 words"):
        WordListRecognizer([(Entity.PERSON_NAME, "a b c d e f")])
    with pytest.raises(ConfigError, match="no PII recognizer named 'spacy'"):
        load_recognizer("spacy:en_core_web_sm")
    with pytest.raises(ConfigError, match="has no name"):
        load_recognizer(":x")


PLUGIN = '''
from garrison.recognizers.pii_types import Entity, Match


class Capitalised:
    """Every capitalised word after "Dr." is a person name: a toy NER."""

    entities = frozenset({Entity.PERSON_NAME})

    def __init__(self, arg):
        self.arg = arg

    def find(self, text):
        at = text.find("Dr. ")
        while at >= 0:
            start = at + 4
            end = start
            while end < len(text) and text[end].isalpha():
                end += 1
            if end > start:
                yield Match(entity=Entity.PERSON_NAME, kind=f"toy-{self.arg}", start=start, end=end,
                            score=0.8, validated=False)
            at = text.find("Dr. ", end)


class Broken:
    entities = frozenset({Entity.PERSON_NAME})

    def find(self, text):
        yield Match(entity=Entity.EMAIL, kind="x", start=0, end=1, score=1.0, validated=False)


def make(arg):
    return Capitalised(arg)


def broken(arg):
    return Broken()


def not_a_recognizer(arg):
    return object()
'''


@pytest.fixture
def plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution (a dist-info on sys.path) registering three recognizers."""
    (tmp_path / "toy_ner.py").write_text(PLUGIN, encoding="utf-8")
    info = tmp_path / "toy_ner-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-ner\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        "[garrison.pii_recognizers]\ntoy = toy_ner:make\nbroken = toy_ner:broken\n"
        "nothing = toy_ner:not_a_recognizer\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.usefixtures("plugin_package")
def test_entry_point_plugin_is_found_and_checked() -> None:
    (toy,) = load_recognizers(["toy:v2"])
    text = "Seen by Dr. Okafor and Dr. Lindqvist."
    found = find_with([toy], text)
    assert _terms(found, text) == [("Okafor", "person-name"), ("Lindqvist", "person-name")]
    assert {m.kind for m in found} == {"toy-v2"}
    with pytest.raises(InputError, match="not a Match of its declared entities"):
        find_with(load_recognizers(["broken"]), "x")
    with pytest.raises(ConfigError, match="did not return a recognizer"):
        load_recognizer("nothing")


def test_plugin_failures_fail_closed() -> None:
    class Raises:
        entities = frozenset({Entity.PERSON_NAME})

        def find(self, text: str) -> Iterable[Match]:
            raise RuntimeError("model not loaded")

    class OutOfRange:
        entities = frozenset({Entity.PERSON_NAME})

        def find(self, text: str) -> Iterable[Match]:
            return [Match(entity=Entity.PERSON_NAME, kind="x", start=0, end=99, score=1.0, validated=False)]

    with pytest.raises(InputError, match="Raises failed: RuntimeError: model not loaded"):
        find_with([Raises()], "text")
    with pytest.raises(InputError, match="outside a text of 4 characters"):
        find_with([OutOfRange()], "text")


def test_scanner_runs_plugins_one_value_at_a_time(tmp_path: Path) -> None:
    from garrison.recognizers.pii import Scanner

    seen: list[str] = []

    class Spy:
        entities = frozenset({Entity.PERSON_NAME})

        def find(self, text: str) -> Iterable[Match]:
            seen.append(text)
            at = text.find("Zorblax")
            if at >= 0:
                yield Match(
                    entity=Entity.PERSON_NAME, kind="spy", start=at, end=at + 7, score=0.9, validated=False
                )

    scanner = Scanner(recognizers=[Spy()])
    texts = ["met Zorblax today", "nothing here", "Zorblax again"]
    many = scanner.scan_many(texts)
    assert many == [scanner.scan(t) for t in texts]
    assert [[(t[m.start : m.end], m.kind) for m in ms] for t, ms in zip(texts, many, strict=True)] == [
        [("Zorblax", "spy")],
        [],
        [("Zorblax", "spy")],
    ]
    assert all("\0" not in text for text in seen)  # never the NUL-joined batch
    assert Scanner(entities=[Entity.EMAIL], recognizers=[Spy()]).scan("Zorblax") == []


def test_scan_data_with_a_word_list_from_garrison_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from garrison.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "people.txt").write_text("Zorblax Quim\n", encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.csv").write_text("id,note\n1,call Zorblax Quim tomorrow\n2,all fine\n", encoding="utf-8")
    assert main(["scan", "data", str(data), "--no-store", "--format", "json"]) == 0
    assert "person-name" not in capsys.readouterr().out  # no cue: the patterns cannot see it
    (tmp_path / "garrison.toml").write_text('pii-recognizers = ["wordlist:people.txt"]\n', encoding="utf-8")
    main(["scan", "data", str(data), "--no-store", "--format", "json"])
    findings = json.loads(capsys.readouterr().out)["findings"]
    (finding,) = [f for f in findings if f["rule"]["id"] == "GAR-PII-001"]
    assert "column 'note'" in finding["message"]
    assert "Zorblax" not in finding["message"]  # masked
    (tmp_path / "garrison.toml").write_text('pii-recognizers = ["ner:en"]\n', encoding="utf-8")
    assert main(["scan", "data", str(data), "--no-store"]) == 2
    assert "no PII recognizer named 'ner'" in capsys.readouterr().err
