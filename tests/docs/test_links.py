"""Every link of the README and of every page of docs/ (subfolders included) resolves: a relative link to a
file or folder of the repository, and its #anchor to a heading of the page it names. (tests/test_paths_named.py
checks the repository paths the same pages name in their text; mkdocs build --strict, the links on the site.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.blocks import DOCS, ROOT

PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose(text: str) -> str:
    """The page without its code blocks."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return "\n".join(kept)


def anchors(page: Path) -> set[str]:
    """The ids of the page's headings, as GitHub and MkDocs' toc make them."""
    found = set()
    for line in prose(page.read_text()).splitlines():
        heading = re.match(r"^#{1,6} (.+)$", line)
        if heading:
            text = re.sub(r"[`*]", "", heading.group(1)).strip().lower()
            found.add(re.sub(r"\s+", "-", re.sub(r"[^\w\s-]", "", text)))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_link_resolves(page):
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: {resolved.relative_to(ROOT)} has no heading #{anchor}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_the_anchor_rule_catches_a_missing_heading(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Node readiness: `fleetscope check`\n\n## At fleet scale: profiles, data quality\n")
    assert anchors(page) == {"node-readiness-fleetscope-check", "at-fleet-scale-profiles-data-quality"}


def test_every_page_of_docs_is_in_the_sites_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {page.relative_to(DOCS).as_posix() for page in DOCS.rglob("*.md")}
    assert {page for page in pages if page not in nav} == set()
