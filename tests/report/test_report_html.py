"""The HTML page: escaping, self-containment, content and structure."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import replace
from html.parser import HTMLParser

from garrison.core.results import ScanReport
from garrison.report.html import render_html


class _Page(HTMLParser):
    """Collects tags, attributes and script bodies of a page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(v in (a.get(k.rstrip("_")) or "").split() for k, v in attrs.items())
        ]


def test_report_text_is_escaped(sample_report: ScanReport) -> None:
    page = render_html(sample_report)
    assert "Email address in column email &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    assert len(_Page(page).find("script")) == 1


def test_attribute_and_control_characters_are_neutralised(sample_report: ScanReport) -> None:
    finding = replace(sample_report.findings[0], message='x" onmouseover="alert(1) \x1b[31m \u202e')
    asset = replace(finding.asset, locator='evil"><img src=x onerror=alert(1)>.pkl')
    report = replace(sample_report, findings=(replace(finding, asset=asset),))
    page = render_html(report)
    parsed = _Page(page)
    assert not [a for _, a in parsed.tags if any(k.startswith("on") for k in a)]
    assert parsed.find("img") == []
    assert "\\x1b[31m" in page
    assert "\\u202e" in page
    assert "\x1b" not in page
    assert "\u202e" not in page


def test_page_is_self_contained(sample_report: ScanReport) -> None:
    page = render_html(sample_report)
    parsed = _Page(page)
    for tag in ("link", "img", "iframe", "object", "embed", "base"):
        assert parsed.find(tag) == [], tag
    assert not [a for _, a in parsed.tags if "src" in a]
    assert "@import" not in page
    assert "url(" not in page
    hrefs = [a["href"] for a in parsed.find("a")]
    assert hrefs
    assert all(h is not None and h.startswith("https://") for h in hrefs)


def test_csp_allows_only_the_page_script(sample_report: ScanReport) -> None:
    parsed = _Page(render_html(sample_report))
    csp = next(a["content"] for a in parsed.find("meta") if a.get("http-equiv") == "Content-Security-Policy")
    assert csp is not None
    assert "default-src 'none'" in csp
    (script,) = parsed.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp


def test_header_summary_and_bar(sample_report: ScanReport) -> None:
    page = render_html(sample_report)
    assert "<title>Garrison report: ./project</title>" in page
    assert "run-2024-0001" in page
    assert "2024-05-01T12:00:00Z" in page
    cards = dict(re.findall(r'class="card sev-(\w+)[^"]*"><span class="count">(\d+)</span>', page))
    assert cards == {"critical": "2", "high": "2", "medium": "1", "low": "1", "info": "1"}
    widths = re.findall(r'class="seg sev-(\w+)" style="width: ([\d.]+)%"', page)
    assert [w[0] for w in widths] == ["critical", "high", "medium", "low", "info"]
    assert abs(sum(float(w[1]) for w in widths) - 100.0) < 0.01


def test_incomplete_banner_lists_errors(sample_report: ScanReport, empty_report: ScanReport) -> None:
    page = render_html(sample_report)
    banner = page.split('class="banner incomplete"')[1].split("</section>")[0]
    assert "1 asset could not be scanned" in banner
    assert "models/broken.gguf" in banner
    assert "GGUF header is truncated at byte 12" in banner
    assert 'class="banner incomplete"' not in render_html(empty_report)


def test_findings_grouped_by_asset_most_severe_first(sample_report: ScanReport) -> None:
    page = render_html(sample_report)
    groups = re.findall(
        r'<details class="asset worst-(\w+)" open>\s*<summary>\s*<span class="locator mono">([^<]+)<', page
    )
    assert groups == [
        ("critical", "models/bundle.pt"),
        ("critical", "models/evil.pkl"),
        ("high", "https://llm.example.test/v1/chat"),
        ("low", "data/customers.csv"),
        ("info", "models/classifier.onnx"),
    ]
    findings_section = page.split('aria-label="Findings"')[1].split("</section>")[0]
    severities = re.findall(r'data-severity="(\w+)"', findings_section)
    assert severities == ["critical", "high", "critical", "medium", "high", "low", "info"]


def test_each_finding_shows_rule_location_evidence_remediation_references(sample_report: ScanReport) -> None:
    page = render_html(sample_report)
    for caption in ("Byte ranges", "Opcodes", "Matched text", "Measurements", "Observations", "Exchanges"):
        assert f"<caption>Evidence · {caption}</caption>" in page
    assert '<span class="rule-id">GAR-PKL-001</span>' in page
    assert '<span class="rule-name">unsafe-pickle-global</span>' in page
    assert "member archive/data.pkl, offset 112 (0x70)" in page
    assert '<td class="ev-opcode">STACK_GLOBAL</td>' in page
    assert "Do not load this file." in page
    assert 'href="https://cwe.mitre.org/data/definitions/502.html"' in page
    assert "NIST-AI-RMF MEASURE-2.7" in page


def test_filter_has_a_checkbox_per_severity_and_is_hidden_without_js(sample_report: ScanReport) -> None:
    parsed = _Page(render_html(sample_report))
    (form,) = [a for t, a in parsed.tags if t == "form"]
    assert form.get("id") == "filters"
    assert "hidden" in form
    boxes = [a["value"] for a in parsed.find("input") if a.get("type") == "checkbox"]
    assert boxes == ["critical", "high", "medium", "low", "info"]


def test_baselined_and_skipped_are_collapsed_sections(sample_report: ScanReport) -> None:
    page = render_html(sample_report)
    assert "Baselined findings" in page
    assert "GAR-SEC-001" in page
    assert "config/notes.txt" in page
    assert "node_modules" in page
    assert "excluded by --exclude" in page


def test_empty_report_says_no_findings(empty_report: ScanReport, error_report: ScanReport) -> None:
    page = render_html(empty_report)
    assert "<h2>No findings</h2>" in page
    assert "Every scanned asset passed" in page
    assert 'id="filters"' not in page
    incomplete = render_html(error_report)
    assert "<h2>No findings</h2>" in incomplete
    assert "Every scanned asset passed" not in incomplete


def test_output_is_deterministic(sample_report: ScanReport) -> None:
    shuffled = replace(sample_report, findings=tuple(reversed(sample_report.findings)))
    assert render_html(sample_report) == render_html(shuffled)
