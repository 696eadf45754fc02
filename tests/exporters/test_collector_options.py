"""Each collector declares itself in its own folder (exporters/<name>/option.py) and is registered by
one line in exporters/collectors.py: none is forgotten, none reaches outside its --collector.<name>. flags,
and declaring one loads none of the collectors' code."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleetscope.exporters import collectors
from fleetscope.exporters.collectors import AVAILABLE, OPTION_MODULES
from fleetscope.exporters.option import CollectorOption

EXPORTERS = Path(collectors.__file__).resolve().parent
# Flags a collector declares outside --collector.<name>., with the reason: each is a name users of another
# exporter already know. Keep it short; a new collector's flags go under its own prefix.
OUTSIDE_ITS_PREFIX = {
    "gpu": {"--compat.dcgm": "compat_dcgm"},  # dcgm-exporter's names, rendered from the gpu collector's reads
}


def _package(module_name: str) -> str:
    prefix, package, module = module_name.rsplit(".", 2)
    assert (prefix, module) == ("fleetscope.exporters", "option"), module_name
    return package


def test_every_collector_package_is_registered():
    with_option = {path.parent.name for path in EXPORTERS.glob("*/option.py")}
    with_collector = {path.parent.name for path in EXPORTERS.glob("*/collector.py")}
    registered = [_package(name) for name in OPTION_MODULES]
    assert sorted(registered) == sorted(with_option)
    assert with_collector <= with_option, "a collector package without option.py is never built"


def test_each_option_is_named_after_its_folder_in_the_order_of_help():
    assert [option.name for option in AVAILABLE] == [_package(name) for name in OPTION_MODULES]
    assert [option.name for option in AVAILABLE][:3] == ["gpu", "fabric", "nccl"]  # new ones go after them


def _declared_flags(option: CollectorOption) -> list[argparse.Action]:
    parser = argparse.ArgumentParser(add_help=False)
    option.add_flags(parser.add_argument_group(option.name))
    return parser._actions


@pytest.mark.parametrize("option", AVAILABLE, ids=lambda option: option.name)
def test_an_option_module_declares_its_flags_under_its_own_prefix_only(option):
    actions = _declared_flags(option)
    assert actions, f"{option.name} declares no flags: it has at least --collector.{option.name}.poll-interval"
    allowed = OUTSIDE_ITS_PREFIX.get(option.name, {})
    outside = {}
    for action in actions:
        flags = [flag.replace("--no-", "--", 1) for flag in action.option_strings]  # BooleanOptionalAction
        if all(flag.startswith(f"--collector.{option.name}.") for flag in flags):
            assert action.dest.startswith(f"{option.name}_"), (flags, action.dest)
        else:
            outside[flags[0]] = action.dest
    assert outside == allowed
    assert f"--collector.{option.name}.poll-interval" in {flag for a in actions for flag in a.option_strings}


def test_no_two_collectors_share_a_destination():
    dests = [action.dest for option in AVAILABLE for action in _declared_flags(option)]
    assert len(dests) == len(set(dests))


def test_a_module_without_an_option_or_a_name_declared_twice_is_refused():
    with pytest.raises(TypeError, match="must declare OPTION"):
        collectors._registered(("fleetscope.exporters.option",))
    with pytest.raises(ValueError, match=r"declared twice: \['gpu'\]"):
        collectors._registered(("fleetscope.exporters.gpu.option", "fleetscope.exporters.gpu.option"))


def test_registering_the_collectors_loads_none_of_their_code():
    # The builders import the collector classes, pynvml and the simulations when the exporter starts.
    probe = "import json, sys; import fleetscope.exporters.collectors; print(json.dumps(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    packages = {name.removesuffix(".option") for name in OPTION_MODULES}
    collectors_code = [module for module in json.loads(loaded.stdout)
                       if module == "pynvml" or (module.rsplit(".", 1)[0] in packages and module not in OPTION_MODULES)]
    assert collectors_code == []
