"""Chat-template analysis and the tokenizer-config scanner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from garrison.core.severity import Severity
from garrison.supplychain.templates import TokenizerTemplateScanner, analyse_template
from tests.supplychain.formats.builders import (
    CHATML_TEMPLATE,
    CVE_2024_34359_TEMPLATE,
    LLAMA3_TEMPLATE,
    rule_ids,
    scan_bytes,
)

SCANNER = TokenizerTemplateScanner()

QWEN_TOOLS = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}"
    "{%- endfor %}{%- endif %}{%- for message in messages %}{%- if message.role == 'assistant' and "
    "message.tool_calls %}{%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined %}"
    "{%- set tool_call = tool_call.function %}{%- endif %}{{- tool_call.name }}"
    "{{- tool_call.arguments | tojson }}"
    "{%- endfor %}{%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    "{% for m in messages|selectattr('role', 'equalto', 'user')|list %}{% break %}{% endfor %}"
    "{{ raise_exception('x') if false }}{{ strftime_now('%d %b %Y') if strftime_now is defined }}"
)


@pytest.mark.parametrize("template", [LLAMA3_TEMPLATE, CHATML_TEMPLATE, QWEN_TOOLS])
def test_ordinary_templates_have_no_high_issues(template: str) -> None:
    assert [i for i in analyse_template(template) if i.severity >= Severity.MEDIUM] == []


@pytest.mark.parametrize(
    ("template", "severity"),
    [
        (CVE_2024_34359_TEMPLATE, Severity.CRITICAL),
        ("{{ lipsum.__globals__['os'].popen('id').read() }}", Severity.CRITICAL),
        ("{{ cycler.__init__.__globals__.os }}", Severity.CRITICAL),
        ("{{ joiner.__init__.__globals__ }}", Severity.CRITICAL),
        ("{{ namespace.__init__.__globals__ }}", Severity.CRITICAL),
        ("{{ self._TemplateReference__context }}", Severity.HIGH),
        ("{{ ()|attr('\\x5f\\x5fclass\\x5f\\x5f') }}", Severity.CRITICAL),
        ("{{ ()|attr('_'*2 ~ 'class' ~ '_'*2) }}", Severity.CRITICAL),
        ("{{ ()|attr(['_','_','class','_','_']|join) }}", Severity.CRITICAL),
        ("{{ ()|attr('__ssalc__'|reverse) }}", Severity.CRITICAL),
        ("{{ x[('%c%c%c%c%c%c%c%c%c'|format(95,95,99,108,97,115,115,95,95))] }}", Severity.CRITICAL),
        ("{{ x|map(attribute='__class__')|list }}", Severity.CRITICAL),
        ("{{ request.application }}", Severity.HIGH),
        ("{{ config.items() }}", Severity.HIGH),
        ("{{ x|attr('format') }}", Severity.HIGH),
        ("{{ dict(__class__=1)|list }}", Severity.HIGH),
        ("{{ __builtins__ }}", Severity.CRITICAL),
        ("{% for x in y %}{{ x.__class__ }}", Severity.HIGH),  # does not parse: searched as text
    ],
)
def test_injection_payloads(template: str, severity: Severity) -> None:
    issues = analyse_template(template)
    assert issues
    assert max(i.severity for i in issues) == severity


def test_cve_2024_56326_format_string_reads_attributes() -> None:
    """CVE-2024-56326: str.format reached indirectly escapes the sandbox via '{0.__class__}'."""
    issues = analyse_template("{% set f = '{0.__class__.__init__.__globals__}'.format %}{{ f(x) }}")
    assert max(i.severity for i in issues) >= Severity.HIGH


def test_cve_2025_27516_attr_filter_to_format() -> None:
    """CVE-2025-27516: |attr('format') obtains str.format past the sandbox's check."""
    issues = analyse_template("{{ '{0.__class__}'|attr('format')(x) }}")
    assert max(i.severity for i in issues) >= Severity.HIGH


def test_medium_building_blocks() -> None:
    assert [i.kind for i in analyse_template("{{ lipsum }}")] == ["gadget-global"]
    assert [i.kind for i in analyse_template("{% include 'x.j2' %}")] == ["template-loading"]


def test_tokenizer_config_string_and_list_forms(tmp_path: Path) -> None:
    config = {
        "bos_token": "<s>",
        "chat_template": [
            {"name": "default", "template": LLAMA3_TEMPLATE},
            {"name": "rag", "template": CVE_2024_34359_TEMPLATE},
        ],
    }
    findings = scan_bytes(SCANNER, tmp_path, "tokenizer_config.json", json.dumps(config).encode())
    assert "GAR-TPL-001" in rule_ids(findings, Severity.CRITICAL)
    assert all("chat_template[rag]" in f.message for f in findings)


def test_clean_tokenizer_config(tmp_path: Path) -> None:
    config = {"chat_template": CHATML_TEMPLATE, "model_max_length": 4096}
    assert (
        rule_ids(
            scan_bytes(SCANNER, tmp_path, "tokenizer_config.json", json.dumps(config).encode()), Severity.HIGH
        )
        == set()
    )


def test_duplicate_chat_template_keys_are_all_checked(tmp_path: Path) -> None:
    raw = (
        '{"chat_template": '
        + json.dumps(CVE_2024_34359_TEMPLATE)
        + ', "chat_template": '
        + json.dumps(LLAMA3_TEMPLATE)
        + "}"
    )
    assert "GAR-TPL-001" in rule_ids(scan_bytes(SCANNER, tmp_path, "tokenizer_config.json", raw.encode()))


def test_jinja_file(tmp_path: Path) -> None:
    findings = scan_bytes(SCANNER, tmp_path, "chat_template.jinja", CVE_2024_34359_TEMPLATE.encode())
    assert "GAR-TPL-001" in rule_ids(findings, Severity.CRITICAL)


def test_json_without_template_is_ignored(tmp_path: Path) -> None:
    assert scan_bytes(SCANNER, tmp_path, "config.json", b'{"hidden_size": 4096}') == []
