"""The node exporter and the inference SDK run without the extras (drift, example, dashboards), as
in the exporter's container image; commands whose extra is missing say what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A finder that refuses every package the extras bring, as if they were not installed.
BLOCK = textwrap.dedent("""
    import sys
    EXTRAS = {"pandas", "scipy", "evidently", "pyarrow", "sklearn", "starlette", "uvicorn", "matplotlib",
              "grafana_foundation_sdk"}

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in EXTRAS:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)

    sys.meta_path.insert(0, Refuse())
""")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_the_exporter_serves_a_simulated_node_without_the_extras():
    result = _python("""
        import argparse
        from fleetscope.exporters import command
        from fleetscope.simulation import node
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        node.add_arguments(parser)
        registry, server = node.build(parser.parse_args(["--simulate", "--web.listen-address=127.0.0.1:0"]))
        from prometheus_client.exposition import generate_latest
        assert registry.wait_ready(60), registry.not_ready()
        page = generate_latest(registry).decode()
        registry.close()
        assert "fleetscope_gpu_power_watts" in page and "fleetscope_fabric_port_state" in page, page[:500]
        print("ok")
    """)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_the_sdk_and_the_drift_client_import_without_the_extras():
    result = _python("""
        from fleetscope.exporters.inference import InferenceMetrics
        from fleetscope.drift.client import DriftClient
        from fleetscope.drift import catalog
        InferenceMetrics(engine="vllm").start("llama", "chat").finish()
        from fleetscope.exporters.training import TrainingMetrics, registry_for
        training = TrainingMetrics(job="llama", rank=0)
        with training.step(samples=8):
            pass
        from prometheus_client.exposition import generate_latest
        assert b"fleetscope_training_steps_total" in generate_latest(registry_for(training))
        import sys
        assert "torch" not in sys.modules
        print("ok")
    """)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_a_command_whose_extra_is_missing_says_what_to_install():
    result = _python("""
        import sys
        from fleetscope.cli import main
        sys.exit(main(["drift", "serve"]))
    """)
    assert result.returncode == 2 and "pip install 'fleetscope[drift]'" in result.stderr, result.stderr


def test_the_generators_needing_the_dashboards_extra_say_so_as_modules_and_as_commands(tmp_path):
    """Without grafana-foundation-sdk, `python -m fleetscope.deploy.generate` and `fleetscope generate deploy` (and
    the dashboards') refuse naming the extra; the alerts generator needs no extra and writes its files."""
    for argv in (["-m", "fleetscope.deploy.generate", "--help"], ["-m", "fleetscope.dashboards.generate"]):
        result = _python(f"""
            import runpy, sys
            sys.argv = {[argv[1]] + argv[2:]!r}
            runpy.run_module({argv[1]!r}, run_name="__main__", alter_sys=True)
        """)
        assert result.returncode == 2, result.stderr
        assert "needs pip install 'fleetscope[dashboards]'" in result.stderr and "Traceback" not in result.stderr
    for command in ("deploy", "dashboards"):
        result = _python(f"""
            import sys
            from fleetscope.cli import main
            sys.exit(main(["generate", {command!r}, {str(tmp_path / command)!r}]))
        """)
        assert result.returncode == 2 and "pip install 'fleetscope[dashboards]'" in result.stderr, result.stderr
        assert not (tmp_path / command).exists()
    result = _python(f"""
        import sys
        from fleetscope.cli import main
        sys.exit(main(["generate", "alerts", {str(tmp_path / "alerts")!r}]))
    """)
    assert result.returncode == 0 and (tmp_path / "alerts" / "rules" / "self.yaml").exists(), result.stderr
