"""The fleetscope command as a user runs it: flags, errors, logs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fleetscope import durations, log
from fleetscope.cli import main


def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleetscope", *argv], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_version_and_help():
    assert run("--version").stdout.startswith("fleetscope ")
    help_text = run("exporter", "--help").stdout
    for flag in ("--web.listen-address", "--web.telemetry-path", "--web.config.file", "--collector.gpu",
                 "--no-collector.gpu", "--collector.gpu.poll-interval", "--simulate"):
        assert flag in help_text


def test_a_command_loads_only_its_own_libraries():
    probe = ("import sys; from fleetscope.cli import build_parser; build_parser({argv}); "
             "print(sorted(m for m in ('pandas', 'scipy', 'evidently', 'sklearn', 'starlette', 'matplotlib') "
             "if m in sys.modules))")
    exporter = subprocess.run([sys.executable, "-c", probe.format(argv=["exporter", "--simulate"])],
                              capture_output=True, text=True, timeout=60)
    assert exporter.stdout.strip() == "[]", exporter.stderr
    drift = subprocess.run([sys.executable, "-c", probe.format(argv=["drift", "serve"])],
                           capture_output=True, text=True, timeout=60)
    assert "pandas" in drift.stdout, drift.stderr


def test_help_lists_every_command_without_loading_them():
    listed = run("--help").stdout
    for command in ("demo", "exporter", "drift", "dashboards", "model-server", "generate", "runbook"):
        assert f"    {command}" in listed
    assert "--config.file" in run("drift", "serve", "--help").stdout


@pytest.mark.parametrize("flags, message", [
    (["--web.telemetry-path=metrics"], "must start with '/'"),
    (["--web.listen-address=nowhere"], "invalid listen address"),
    (["--web.config.file=/does/not/exist.yml"], "cannot read --web.config.file"),
    (["--collector.gpu.poll-interval=5 seconds"], "invalid duration"),
    (["--simulate.gpus=0"], "between 1 and 1024"),
    (["--log.level=loud"], "invalid choice"),
    (["--collector.nccl.ras-timeout-factor=0"], "is not a positive number"),
    (["--collector.nccl.ras-timeout-factor=nan"], "is not a positive number"),
])
def test_user_errors_say_what_was_wrong(flags, message):
    result = run("exporter", "--simulate", *flags)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_listen_address_in_use_is_a_clear_error():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("exporter", "--simulate", f"--web.listen-address=127.0.0.1:{port}")
    assert result.returncode == 2 and "cannot listen on" in result.stderr


def test_json_logs_are_one_object_a_line(capsys):
    log.configure("info", "json")
    log.get("fleetscope.test").warning("GPU is down", extra={"gpu": 3})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["msg"] == "GPU is down" and record["gpu"] == 3 and record["level"] == "warn"
    log.configure("info", "logfmt")
    log.get("fleetscope.test").info("two words", extra={"path": "/a b"})
    assert 'msg="two words"' in capsys.readouterr().err


def test_main_returns_2_on_user_error(capsys):
    assert main(["exporter", "--simulate", "--web.telemetry-path=x"]) == 2


@pytest.mark.parametrize("text, seconds", [("15s", 15), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("0s", 0),
                                           ("1.5s", 1.5)])
def test_durations(text, seconds):
    assert durations.parse(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "s", "5 s", "1x", "-1s", "1s2"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="invalid duration"):
        durations.parse(text)


def test_the_drift_service_refuses_to_serve_every_interface_without_write_tokens(tmp_path):
    result = run("drift", "serve", "--web.listen-address=:0", f"--storage.path={tmp_path / 's.sqlite'}")
    assert result.returncode == 2 and "with no credentials" in result.stderr and "--web.allow-unauthenticated" in \
        result.stderr
    assert not (tmp_path / "s.sqlite").exists()  # refused before anything was opened


def test_the_drift_service_serves_every_interface_without_tokens_only_when_told_and_says_so(tmp_path, monkeypatch,
                                                                                          capsys):
    from fleetscope.cli import build_parser
    from fleetscope.drift import command
    from fleetscope.web import asgi, memory

    served = []
    monkeypatch.setattr(asgi, "serve", lambda app, host, port, limits, **tls: served.append((host, port)))
    monkeypatch.setattr(memory, "configure", dict)  # the allocator settings are the process's, not this test's
    log.configure("info", "json")
    args = build_parser().parse_args(["drift", "serve", "--web.listen-address=:9840", "--web.allow-unauthenticated",
                                      f"--storage.path={tmp_path / 's.sqlite'}"])
    assert command.run(args) == 0 and served == [("0.0.0.0", 9840)]
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(record["level"] == "warn" and "without authentication" in record["msg"] for record in records)


@pytest.mark.parametrize("flag", ["--web.max-connections=0", "--web.header-timeout=0s"])
def test_connection_limits_must_be_positive(flag):
    result = run("exporter", "--simulate", flag)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("command", [["exporter"], ["drift", "serve"], ["model-server"], ["demo"], ["simulate-fleet"],
                                     ["dashboards", "preview"]])
def test_help_shows_each_default_once_as_it_is_written(command):
    """Durations as 15s (not 15.0), one default per flag, none where there is nothing to show, no Python
    tuple or None; and --version answers on every command."""
    import re

    text = " ".join(run(*command, "--help").stdout.split())
    flags = re.split(r" (?=--?[a-z][\w.-]*[ ,])", text)
    for flag in flags:
        assert flag.count("(default:") <= 1, flag
    defaults = re.findall(r"\(default: ([^)]*)\)", text)
    assert defaults, text
    for shown in defaults:
        assert shown and shown not in ("None", "True", "False") and not shown.startswith(("(", "[")), shown
        assert not re.fullmatch(r"\d+\.\d+", shown), f"a duration shown as a float: {shown}"
    assert run(*command, "--version").stdout.startswith("fleetscope ")


def test_durations_are_written_as_prometheus_writes_them():
    assert [durations.written(s) for s in (15.0, 900, 0.1, 90, 0, 604800, 1.5)] == \
        ["15s", "15m", "100ms", "1m30s", "0s", "1w", "1s500ms"]
    assert all(durations.parse(durations.written(s)) == s for s in (0.25, 7200, 86400 * 3 + 1))
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            durations.written(bad)


def test_an_error_that_stops_a_command_is_reported_once():
    result = run("exporter", "--simulate", "--web.telemetry-path=metrics")
    assert result.returncode == 2
    assert result.stderr.count("must start with '/'") == 1, result.stderr
    assert "level=error" in result.stderr


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "not-a-url"])
def test_an_unreachable_prometheus_is_a_message_not_a_traceback(url, tmp_path):
    result = run("dashboards", "preview", f"--prometheus.url={url}", f"--output={tmp_path / 'out'}")
    assert result.returncode == 2 and "cannot query Prometheus at --prometheus.url=" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, flag", [("alerts", "--config"), ("dashboards", "--config"),
                                        ("deploy", "--alerts-config")])
def test_fleetscope_generate_writes_what_the_generator_modules_write(name, flag, tmp_path, capsys):
    import importlib

    from fleetscope.mixin.config import load

    (tmp_path / "config.yaml").write_text("selectors: {exporter: 'job=\"gpu-nodes\"'}\n")
    assert main(["generate", name, f"{flag}={tmp_path / 'config.yaml'}", str(tmp_path / "out")]) == 0
    expected = importlib.import_module(f"fleetscope.{name}.generate").files(load(tmp_path / "config.yaml"))
    written = {str(path.relative_to(tmp_path / "out")): path.read_text()
               for path in (tmp_path / "out").rglob("*") if path.is_file()}
    assert written == expected
    assert any("gpu-nodes" in text for text in written.values())
    assert set(capsys.readouterr().out.splitlines()) == {str(tmp_path / "out" / path) for path in expected}


def test_fleetscope_generate_refuses_a_bad_setting_naming_it(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("self_monitoring: {memory_ratio: 2}\n")
    assert main(["generate", "alerts", f"--config={tmp_path / 'config.yaml'}", str(tmp_path / "out")]) == 2
    assert "self_monitoring.memory_ratio" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_fleetscope_runbook_prints_what_the_default_runbook_url_names(capsys):
    from fleetscope.alerts import generate
    from fleetscope.alerts.runbook_command import RUNBOOKS

    rule = next(rule for group in yaml_groups(generate.files()["rules/self.yaml"]) for rule in group["rules"])
    assert main(["runbook", rule["annotations"]["runbook_url"]]) == 0
    assert capsys.readouterr().out == (RUNBOOKS / f"{rule['alert']}.md").read_text()
    assert main(["runbook", "FleetscopeGPUXid"]) == 2
    assert "did you mean FleetscopeGPUXidError" in capsys.readouterr().err


def yaml_groups(text: str) -> list[dict]:
    import yaml

    return yaml.safe_load(text)["groups"]
