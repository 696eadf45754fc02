#!/usr/bin/env bash
# Sets up everything fleetscope needs on a Debian machine, idempotently:
# Debian's prometheus (prometheus, promtool) and prometheus-alertmanager (prometheus-alertmanager,
# amtool) for the integration tests and the demo, victoria-metrics (with vmalert) for the fleet's
# global view, slurm-wlm and munge for `fleetscope remediate`'s tests, chromium (headless) for the test that opens a
# drift report in a real browser, and a virtual environment in .venv with fleetscope installed in
# editable mode plus its test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for tool in prometheus promtool; do command -v "$tool" >/dev/null || need_apt+=(prometheus); done
# Debian installs Alertmanager as prometheus-alertmanager (amtool keeps its name).
for tool in prometheus-alertmanager amtool; do command -v "$tool" >/dev/null || need_apt+=(prometheus-alertmanager); done
command -v chromium >/dev/null || need_apt+=(chromium)
# VictoriaMetrics (the server and vmalert) is the fleet's long-term store and global ruler in the tests.
for tool in victoria-metrics vmalert; do command -v "$tool" >/dev/null || need_apt+=(victoria-metrics); done
# Slurm (slurmctld, slurmd, scontrol, sinfo) and munge: `fleetscope remediate` drains real Slurm nodes in the tests.
# The daemons live in /usr/sbin, which a non-root PATH may lack.
for tool in slurmctld slurmd scontrol sinfo; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || need_apt+=(slurm-wlm)
done
for tool in munged mungekey; do command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || need_apt+=(munge); done
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing Debian packages: $(printf '%s\n' "${need_apt[@]}" | sort -u | tr '\n' ' ')" >&2
    $sudo apt-get update -qq
    # The packages start their own services where an init system runs; we start ours by hand.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        $(printf '%s\n' "${need_apt[@]}" | sort -u) >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all,test]'
echo "setup: ready ($(.venv/bin/fleetscope --version))" >&2
