"""MkDocs hook: a link from a page to a file of the repository outside docs/ (`../exporters/...` from a page
at the top of docs/) becomes a link to that file on GitHub, so that the pages read the same on GitHub, in the
checkout and on the built site, and `mkdocs build --strict` still fails on a link to a page that does not exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

REPOSITORY = "https://github.com/fleetscope/fleetscope"
BRANCH = "main"
LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")
FENCE = re.compile(r"^\s*(```|~~~)")


def github_url(target: Path, root: Path) -> str:
    kind = "tree" if target.is_dir() else "blob"
    return f"{REPOSITORY}/{kind}/{BRANCH}/{target.relative_to(root).as_posix()}"


def rewrite(markdown: str, page_path: Path, docs_dir: Path, root: Path) -> str:
    """Links outside docs_dir that resolve inside root become GitHub URLs; code blocks are left alone."""
    out, fenced = [], False
    for line in markdown.splitlines(keepends=True):
        if FENCE.match(line):
            fenced = not fenced
        if not fenced:
            def replace(match: re.Match[str]) -> str:
                target = match.group(2)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    return match.group(0)
                resolved = (page_path.parent / target).resolve()
                if resolved.is_relative_to(docs_dir) or not resolved.is_relative_to(root) or not resolved.exists():
                    return match.group(0)
                return f"{match.group(1)}{github_url(resolved, root)}{match.group(3) or ''}{match.group(4)}"
            line = LINK.sub(replace, line)
        out.append(line)
    return "".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs_dir = Path(config["docs_dir"]).resolve()
    return rewrite(markdown, docs_dir / page.file.src_path, docs_dir, docs_dir.parent)
