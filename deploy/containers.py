"""A container build file for each service: two stages, the runtime one without compilers or
pip caches, running as an unprivileged user; each installs only its own extra."""

from __future__ import annotations

from dataclasses import dataclass

from fleetscope.deploy.kubernetes import DRIFT_PORT, EXPORTER_PORT

# Debian bookworm's Python 3.11, as the project is tested; the slim variant has no compilers.
BASE = "python:3.11-slim-bookworm"
USER = "65532:65532"  # distroless' "nonroot"; no account needed in /etc/passwd
# What building the wheel reads: every folder pyproject.toml maps to a package (tests/deploy/test_deploy.py checks).
SOURCES = ("pyproject.toml", "README.md", "fleetscope", "exporters", "drift", "mixin", "alerts", "dashboards", "deploy",
           "remediation", "simulation", "localstack", "example")


@dataclass(frozen=True)
class Image:
    name: str
    extra: str  # the pyproject extra it installs, or "" for the core
    port: int
    command: tuple[str, ...]
    notes: str


IMAGES = (
    Image("exporter", "", EXPORTER_PORT, ("exporter",),
          "The node exporter. Run it with the NVIDIA container runtime (NVIDIA_DRIVER_CAPABILITIES=utility) "
          "so that NVML is mounted in;\n# the DaemonSet runs it as root only to read the kubelet's pod-resources "
          "socket."),
    Image("drift", "drift", DRIFT_PORT, ("drift", "serve"),
          "The drift service. Mount a volume at /var/lib/fleetscope-drift for its store."),
    Image("model-server", "example", 8000, ("model-server", "--web.listen-address=:8000"),
          "The example model server, instrumented with the inference SDK."),
)


def containerfile(image: Image) -> str:
    target = f".[{image.extra}]" if image.extra else "."
    package = f"fleetscope[{image.extra}]" if image.extra else "fleetscope"
    copies = "\n".join(f"COPY {source} {source}" for source in SOURCES)
    entrypoint = ", ".join(f'"{word}"' for word in ("fleetscope", *image.command))
    return f"""\
# syntax=docker/dockerfile:1
# {image.notes}
# Build from the repository root: docker build -f deploy/containers/{image.name}.Containerfile .
FROM {BASE} AS build
WORKDIR /src
{copies}
RUN pip wheel --no-cache-dir --wheel-dir /wheels '{target}'

FROM {BASE}
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels '{package}' && rm -rf /wheels
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER {USER}
EXPOSE {image.port}
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{image.port}/-/healthy', timeout=4)"]
ENTRYPOINT [{entrypoint}]
"""


DOCKERIGNORE = """\
.git
.venv
build
**/__pycache__
*.egg-info
tests
benchmarks
docs
site
.engines
example/drift-quickstart/drift-*-tokens
example/drift-quickstart/*.parquet
example/drift-quickstart/drift.sqlite*
"""
