"""The documentation site builds with `mkdocs build --strict`: every page is in the nav, and every link
between pages, every anchor and every snippet a page includes resolves. Links to the
repository's files outside docs/ become GitHub URLs (docs/hooks/repository_links.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.docs.blocks import DOCS, ROOT

sys.path.insert(0, str(DOCS / "hooks"))
import repository_links  # noqa: E402


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], cwd=config.parent, capture_output=True, text=True,
                          timeout=240, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})


def test_the_site_builds_strictly():
    with tempfile.TemporaryDirectory(prefix="fleetscope-site-") as site:
        result = mkdocs_build(ROOT / "mkdocs.yml", Path(site))
        assert result.returncode == 0, result.stderr[-4000:]
        assert "WARNING" not in result.stderr, result.stderr[-4000:]
        built = Path(site)
        for page in ("quickstart", "deploy/bare-metal", "dashboards", "drift", "reference/dcgm-exporter"):
            assert (built / page / "index.html").is_file(), page
        quickstart = (built / "quickstart" / "index.html").read_text()
        assert "chargebacks-2026-11-30" in quickstart  # the labels example, included from drift.md
        drift = (built / "drift" / "index.html").read_text()
        assert "uncertain_columns: exclude" in drift  # example/drift-quickstart/drift.yaml, included
        assert 'href="https://github.com/fleetscope/fleetscope/blob/main/mixin/config.py"' in (
            (built / "architecture" / "index.html").read_text())


@pytest.mark.parametrize("breakage", ["[a page](no-such-page.md)", "[an anchor](drift.md#no-such-section)",
                                      '--8<-- "example/{missing}.yaml"'.format(missing="no-such-file")])
def test_a_broken_link_anchor_or_snippet_fails_the_build(breakage):
    with tempfile.TemporaryDirectory(prefix="fleetscope-site-") as directory:
        copy = Path(directory) / "repository"
        shutil.copytree(DOCS, copy / "docs")
        shutil.copy2(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
        shutil.copytree(ROOT / "example" / "drift-quickstart", copy / "example" / "drift-quickstart")
        (copy / "docs" / "index.md").write_text((copy / "docs" / "index.md").read_text() + f"\n{breakage}\n")
        result = mkdocs_build(copy / "mkdocs.yml", copy / "site")
        assert result.returncode != 0, f"{breakage} did not fail the build"


def test_repository_links_become_github_urls_and_pages_stay(tmp_path):
    docs = tmp_path / "docs"
    (docs / "deploy").mkdir(parents=True)
    (tmp_path / "exporters").mkdir()
    (tmp_path / "exporters" / "a.py").write_text("")
    page = docs / "deploy" / "x.md"
    up = "../"  # the links as a page of docs/deploy/ writes them
    text = (f"[code]({up}{up}exporters/a.py#L3) [folder]({up}{up}exporters) [page]({up}index.md) "
            f"[gone]({up}{up}nope.py) [web](https://example.com/a.py)\n```\n[code]({up}{up}exporters/a.py)\n```\n")
    rewritten = repository_links.rewrite(text, page, docs, tmp_path).splitlines()
    github = "https://github.com/fleetscope/fleetscope"
    assert rewritten[0] == (f"[code]({github}/blob/main/exporters/a.py#L3) [folder]({github}/tree/main/exporters) "
                            f"[page]({up}index.md) [gone]({up}{up}nope.py) [web](https://example.com/a.py)")
    assert rewritten[2] == f"[code]({up}{up}exporters/a.py)"  # in a code block: left alone
