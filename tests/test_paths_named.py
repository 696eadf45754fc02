"""Every repository path that the repository names for its readers exists.

Scanned (the tracked files people read, and new ones git does not ignore): every Markdown file (README.md,
CONTRIBUTING.md, docs/ and the documentation site's pages, mkdocs.yml's nav, the
runbooks, fixture READMEs), pyproject.toml, shell scripts, the comments, docstrings and other string
literals of every .py file, and the hand-written YAML under deploy/, alerts/ and dashboards/ (the promtool
tests). Generated files (those that open with fleetscope.generated.header) are left out: their text comes
from the generators' Python, which is scanned, and the generator tests keep the two equal. JSON is data
(dashboard models, benchmark results, NVML recordings) and is left out too.

A token is a path when it has a '/' and ends with one of EXTENSIONS, or has two or more names and ends
with '/' (a folder: `simulation/recordings/`; a single `name/` is too often a ratio, a regex, a URL
prefix or a folder of a tree listed just above, and is not checked). It resolves when it exists relative
to the repository root, to the folder of the file naming it or one of that folder's parents, or to a
component folder of pyproject.toml's package-dir table (the generators and package data name files
relative to their component: `alertmanager/alertmanager.yml`, `provisioning/datasources.yaml`). A path
starting with ./ or ../ resolves only relative to the file naming it.

The installed layout is not the repository's: `fleetscope/mixin/config.py` is mixin/config.py here, and
the failure says so (through the package-dir table). A line may name the installed form next to the
repository form, to contrast the two.

Not paths of this repository, so never flagged: URLs (those into this repository's own GitHub tree are
checked as paths), absolute paths (/etc/..., /var/lib/..., and HTTP routes such as /v1/models/), paths
under a user or temporary directory or with placeholders ($HOME/..., ~/..., {job}/..., <uid>.json,
.../step_0/), glob patterns, MIME types, bare file names (`drift.yaml`, which a user writes), and the
upstream projects' paths in UPSTREAM, which are cited next to that project's name.
"""

from __future__ import annotations

import io
import re
import subprocess
import tokenize
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetscope.generated import header

ROOT = Path(__file__).resolve().parent.parent

EXTENSIONS = ("py", "md", "yaml", "yml", "json", "sh", "toml", "txt", "png", "csv", "parquet", "service",
              "Containerfile", "proto", "html", "cfg", "ini")

# Upstream projects' own paths, cited where the code copies or follows them. Each is excused only where
# the upstream's name (the pattern, case-insensitive) appears within CITATION_LINES lines of it, so that
# a path of ours that happens to share a prefix is still checked.
UPSTREAM: dict[str, str] = {
    "vllm/": r"vllm",                                           # vLLM
    "python/sglang/": r"sglang",                                # SGLang
    "tensorrt_llm/": r"tensorrt-llm",                           # TensorRT-LLM
    "docs/backends/trtllm/": r"dynamo",                         # NVIDIA Dynamo's docs
    "lib/llm/src/": r"dynamo",                                  # NVIDIA Dynamo
    "lmdeploy/": r"lmdeploy",                                   # LMDeploy
    "python/ray/": r"\bray\b",                                  # Ray Serve
    "doc/source/serve/": r"\bray\b",                            # Ray Serve's docs
    "model/gen-ai/": r"opentelemetry",                          # OpenTelemetry semantic conventions
    "nannyml/": r"nannyml",                                     # NannyML
    "scipy/": r"scipy",                                         # SciPy
    "core/metric_types.py": r"evidently",                       # Evidently
    "evidently/legacy/": r"evidently",                          # Evidently's legacy API (embeddings, text)
    "legacy/metrics/": r"evidently",                            # Evidently's legacy API, relative to its package
    "ray/serve/": r"\bray\b",                                   # Ray Serve, relative to python/
    "etc/default-counters.csv": r"dcgm-exporter",               # NVIDIA dcgm-exporter
    "grafana/dcgm-exporter-dashboard.json": r"dcgm-exporter",   # NVIDIA dcgm-exporter
    "grafana/keda-gpu-scaling.json": r"dcgm-exporter",          # NVIDIA dcgm-exporter
    "staging/src/k8s.io/": r"kubernetes",                       # Kubernetes (the kubelet's APIs)
    "doc/PERFORMANCE.md": r"nccl-tests",                        # nccl-tests
    "plugins/profiler/": r"nvidia",                             # NCCL's profiler plugins
    "class/infiniband/": r"sysfs",                              # Linux sysfs, relative to /sys
}
CITATION_LINES = 3

# TEMPORARY: broken paths in files this change could not edit (drift/service/, exporters/ were being
# restructured). Each entry is (file, path); remove it when the path is fixed. Keep this empty.
KNOWN_BROKEN_TEMPORARY: set[tuple[str, str]] = set()

OWN_URL = re.compile(r"https://github\.com/fleetscope/fleetscope/(?:blob|tree)/[^/\s]+/([^\s)\"'`>#]+)")
URL = re.compile(r"\b[a-z][a-z0-9+.\-]*://\S*|\b[\w.\-]+:\d+/\S*")  # scheme://..., host:port/...
TOKEN = re.compile(r"[\w.\-~$*?{}<>\[\]@+]*/[\w.\-~$*?{}<>\[\]@+/]*")
PLACEHOLDER = re.compile(r"[~$*?{}<>\[\]]|\.\.\.")
MIME = re.compile(r"^(application|text|image|audio|video|multipart|font)/")
SUFFIX = re.compile(r"\.(" + "|".join(EXTENSIONS) + ")$")


@dataclass(frozen=True)
class Named:
    file: str
    line: int
    path: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}"


def package_dirs() -> dict[str, str]:
    """pyproject.toml's package-dir table as paths: {"fleetscope/alerts": "alerts", ...}."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {package.replace(".", "/"): folder for package, folder in table.items()}


def tracked_files() -> list[str]:
    """The files a commit of this checkout would hold: tracked, and new ones git does not ignore (a new page
    of docs/ is checked before it is first committed)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                                capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()]


def is_generated(path: Path) -> bool:
    opening, _, _ = header("\0").partition("\0")
    with path.open() as text:
        return text.readline().startswith(opening)


def scanned(name: str) -> bool:
    path = Path(name)
    if path == Path(__file__).resolve().relative_to(ROOT):  # its own examples name paths that must not exist
        return False
    if path.suffix in (".md", ".sh") or name == "pyproject.toml" or path.suffix == ".py":
        return True
    if path.suffix in (".yaml", ".yml") and path.parts[0] in ("deploy", "alerts", "dashboards"):
        return not is_generated(ROOT / name)
    return False


def prose(name: str) -> list[tuple[int, str]]:
    """(line number, text) of what a reader reads in the file: all of it, or a .py file's comments and strings."""
    text = (ROOT / name).read_text()
    if not name.endswith(".py"):
        return list(enumerate(text.splitlines(), 1))
    lines = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in (tokenize.COMMENT, tokenize.STRING):
            lines += [(token.start[0] + offset, part) for offset, part in enumerate(token.string.splitlines())]
    return lines


def candidates(name: str) -> list[tuple[Named, bool]]:
    """Every path-looking token in the file, with whether it is a URL into this repository."""
    found = []
    for number, line in prose(name):
        found += [(Named(name, number, match.group(1).rstrip(".,;:")), True) for match in OWN_URL.finditer(line)]
        line = URL.sub(" ", line)
        for match in TOKEN.finditer(line):
            start, token = match.start(), match.group(0).rstrip(".,;:-")
            if start and line[start - 1] == "\\":
                continue  # an escape in a string or regex (\n/...)
            if token.startswith("/") or PLACEHOLDER.search(token) or MIME.match(token):
                continue
            names = [part for part in token.split("/") if part not in ("", ".", "..")]
            if SUFFIX.search(token) or (token.endswith("/") and len(names) >= 2):
                found.append((Named(name, number, token), False))
    return found


def resolves(named: Named, own_url: bool, components: list[str]) -> bool:
    if own_url:
        return (ROOT / named.path).exists()
    here = (ROOT / named.file).parent
    if named.path.startswith(("./", "../")):
        return (here / named.path).exists()
    bases = [ROOT, *[folder for folder in [here, *here.parents] if folder.is_relative_to(ROOT)],
             *(ROOT / component for component in components)]
    return any((base / named.path).exists() for base in bases)


def cited_upstream(named: Named, lines: list[str]) -> bool:
    for prefix, upstream in UPSTREAM.items():
        if named.path.startswith(prefix):
            window = "\n".join(lines[max(0, named.line - 1 - CITATION_LINES):named.line + CITATION_LINES])
            window = re.sub(r"(?<![\w/])" + re.escape(prefix) + r"\S*", " ", window)  # the name, not the path
            if re.search(upstream, window, re.IGNORECASE):
                return True
    return False


def repository_form(path: str, dirs: dict[str, str]) -> str | None:
    """mixin/config.py for fleetscope/mixin/config.py: the installed path mapped through package-dir."""
    for package in sorted(dirs, key=len, reverse=True):
        if path.startswith(package + "/"):
            return dirs[package] + path[len(package):]
    return None


def broken_paths() -> list[str]:
    dirs = package_dirs()
    components = sorted(set(dirs.values()))
    broken = []
    for name in tracked_files():
        if not scanned(name):
            continue
        lines = (ROOT / name).read_text().splitlines()
        for named, own_url in candidates(name):
            if resolves(named, own_url, components) or cited_upstream(named, lines):
                continue
            if (named.file, named.path) in KNOWN_BROKEN_TEMPORARY:
                continue
            repository = repository_form(named.path, dirs)
            if repository and (ROOT / repository).exists():
                if re.search(r"(?<![\w./-])" + re.escape(repository), lines[named.line - 1]):
                    continue  # the line contrasts the installed layout with the repository's
                broken.append(f"{named}  (the installed layout; in the repository it is {repository})")
            else:
                broken.append(f"{named}  (does not exist)")
    return broken


def test_every_path_named_exists():
    broken = broken_paths()
    assert not broken, "paths named that do not exist in the repository:\n" + "\n".join(broken)


def test_temporary_allowances_are_still_needed():
    """An entry of KNOWN_BROKEN_TEMPORARY whose path was fixed (or whose mention is gone) must be removed."""
    dirs = package_dirs()
    components = sorted(set(dirs.values()))
    still = {(named.file, named.path) for name in {file for file, _ in KNOWN_BROKEN_TEMPORARY}
             if (ROOT / name).is_file()
             for named, own_url in candidates(name) if not resolves(named, own_url, components)}
    fixed = KNOWN_BROKEN_TEMPORARY - still
    assert not fixed, f"fixed, remove from KNOWN_BROKEN_TEMPORARY: {sorted(fixed)}"


@pytest.mark.parametrize(("line", "expected"), [
    ("see fleetscope/mixin/config.py.", ["fleetscope/mixin/config.py"]),
    ("# under simulation/recordings/ and json/", ["simulation/recordings/"]),
    ("https://example.com/a/b.md /etc/x/y.yaml ~/x/y.yaml {RULES}/*.yaml .../job/step_0/ a.yaml", []),
    ("application/vnd.apache.parquet \\n/x.py 1/(n+1)", []),
    ("[x](../rules/gpu.yaml) ./scripts/setup.sh", ["../rules/gpu.yaml", "./scripts/setup.sh"]),
])
def test_what_counts_as_a_path(tmp_path, monkeypatch, line, expected):
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    (tmp_path / "doc.md").write_text(line + "\n")
    assert [named.path for named, _ in candidates("doc.md")] == expected


def test_the_installed_layout_maps_to_the_repository():
    dirs = package_dirs()
    assert repository_form("fleetscope/mixin/config.py", dirs) == "mixin/config.py"
    assert repository_form("fleetscope/drift/service/config.py", dirs) == "drift/service/config.py"
    assert repository_form("fleetscope/web/tls.py", dirs) == "fleetscope/web/tls.py"


def test_upstream_paths_are_excused_only_next_to_their_project():
    cited = Named("x.py", 2, "vllm/v1/metrics/loggers.py")
    assert cited_upstream(cited, ["# vLLM 0.11's boundaries", "# (vllm/v1/metrics/loggers.py)"])
    assert not cited_upstream(cited, ["# our boundaries", "# (vllm/v1/metrics/loggers.py)"])
