"""The package as users get it: licences of its dependencies, lazy imports, the rule docs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = re.compile(
    r"\b(AGPL|Affero|BUSL|Business Source|BSL-1\.1|SSPL|Server Side Public|Commons Clause|"
    r"Elastic License|PolyForm)\b",
    re.IGNORECASE,
)


def _licence_text(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    parts = [meta.get("License-Expression") or "", (meta.get("License") or "")[:300]]
    parts += [c for c in meta.get_all("Classifier") or [] if c.startswith("License")]
    return " | ".join(p for p in parts if p)


def _core_tree() -> dict[str, str]:
    """Every distribution the core install needs (no extras), with its licence text."""
    seen: dict[str, str] = {}
    todo = ["garrison"]
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        dist = metadata.distribution(name)
        seen[key] = _licence_text(dist)
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(req.name)
    return seen


def test_core_dependencies_have_no_agpl_or_source_available_licences() -> None:
    tree = _core_tree()
    assert {"typer", "rich", "pydantic", "sqlalchemy", "alembic", "jinja2"} <= set(tree)
    offenders = {name: text for name, text in tree.items() if FORBIDDEN.search(text)}
    assert offenders == {}
    unknown = [name for name, text in tree.items() if not text and name != "garrison"]
    assert unknown == [], f"no licence metadata for {unknown}; check them by hand and list them here"


def test_the_licence_check_would_catch_an_agpl_licence() -> None:
    assert FORBIDDEN.search("GNU Affero General Public License v3")
    assert FORBIDDEN.search("BUSL-1.1")
    assert not FORBIDDEN.search("Apache-2.0 | MIT | BSD-3-Clause | LGPL-2.1")


def test_every_core_dependency_is_pinned_in_constraints() -> None:
    pinned = {}
    for raw in (REPO / "constraints.txt").read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pinned[name.lower().replace("_", "-")] = version
    missing = sorted(set(_core_tree()) - set(pinned) - {"garrison"})
    assert missing == []


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from garrison.cli.main import main\n"
        "main(['--help'])\n"
        "heavy = {'sqlalchemy', 'alembic', 'pydantic', 'jinja2', 'numpy', 'torch', 'garrison.store',"
        " 'garrison.engine', 'garrison.formats', 'rich.progress'}\n"
        "print(__import__('json').dumps(sorted(m for m in sys.modules if m in heavy)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_rule_docs_are_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "docs" / "gen_rules.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
