"""The documentation's runnable blocks: a fenced code block right after a `<!-- test: NAME -->` line.

The tests run these blocks as they are written, so that the docs and what the tests run cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!-- test: ([\w-]+) -->$")


def marked_blocks(page: Path) -> dict[str, str]:
    """{name: the block's text} for every marked block of the page."""
    lines = page.read_text().splitlines()
    found: dict[str, str] = {}
    for number, line in enumerate(lines):
        marker = MARKER.match(line.strip())
        if not marker:
            continue
        fence = lines[number + 1].strip() if number + 1 < len(lines) else ""
        assert fence.startswith("```"), f"{page.name}:{number + 1}: {marker.group(1)} is not followed by a code block"
        end = next(i for i in range(number + 2, len(lines)) if lines[i].strip() == "```")
        assert marker.group(1) not in found, f"{page.name}: two blocks named {marker.group(1)}"
        found[marker.group(1)] = "\n".join(lines[number + 2:end]) + "\n"
    return found


def block(page: str, name: str) -> str:
    """The block marked `name` in page (a path from the repository root: docs/quickstart.md)."""
    blocks = marked_blocks(ROOT / page)
    assert name in blocks, f"{page} has no block marked <!-- test: {name} -->"
    return blocks[name]


def commands(text: str) -> list[str]:
    """The block's shell commands: comment lines dropped, continued lines (ending in \\) joined."""
    out: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if not line.endswith("\\") and _balanced(pending):
            out.append(pending.rstrip("\n"))
            pending = ""
    assert not pending, f"an unfinished command: {pending!r}"
    return out


def _balanced(text: str) -> bool:
    """No quote left open (a JSON body may span lines inside single quotes)."""
    return text.count("'") % 2 == 0
