"""Real engine pages in CI: every page the engine lab recorded (tests/fixtures/engines/<engine>-<version>/,
made by scripts/engines.sh) replayed through the generated rules into a real Prometheus, and every
fleetscope:inference_* series compared with the ground truth recorded beside the page."""

from __future__ import annotations

import pytest

from tests.engines.replay import FIXTURES, _added, _total, assert_agree, engine_of, replay
from tests.support.engine_pages import REPLAY_CLOCK, recorded_phases, replayed_phase

RECORDED = sorted(folder for folder in FIXTURES.iterdir() if folder.is_dir()) if FIXTURES.exists() else []


def test_some_engine_was_recorded():
    assert [folder.name for folder in RECORDED if folder.name.startswith("vllm-")]


@pytest.mark.parametrize("folder", RECORDED, ids=lambda folder: folder.name)
def test_ground_truth_adds_up_and_names_its_engine(folder):
    engine = engine_of(folder)
    for name, page, truth in recorded_phases(folder):
        counts = truth["counts"]
        assert truth["engine"] == engine.name and folder.name == f"{engine.name}-{truth['version']}", name
        assert counts["sent"] == len(truth["requests"]) == sum(v for k, v in counts.items() if k != "sent"), name
        assert page.startswith("# HELP") and "# EOF" not in page, f"{name}: not the 0.0.4 text format"


def test_the_recorded_vllm_pages_carry_the_serving_signals_they_are_checked_against():
    """The replay checks the serving signals against what each page implies: the pages must carry them, and
    the prefill and decode times must have moved, or the check would pass on nothing."""
    for folder in (folder for folder in RECORDED if folder.name.startswith("vllm-")):
        pages = [page for _, page, _ in recorded_phases(folder)]
        for name in ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total",
                     "vllm:request_prefill_time_seconds_count", "vllm:request_decode_time_seconds_sum"):
            assert all(_total(page, name) is not None for page in pages), (folder.name, name)
        assert _total(pages[-1], "vllm:request_decode_time_seconds_sum") > 0, folder.name
        # The prefix-cache phase sends one long prompt four times: its first block is found cached.
        assert _total(pages[-1], "vllm:prefix_cache_hits_total") > 0, folder.name


def test_the_recorded_dynamo_pages_carry_the_kv_routers_counters_and_the_prefix_phase_found_its_blocks():
    """The replay checks Dynamo's prefix-cache hit ratio on the KV router's counters: every page must carry them
    (the lab's frontend runs --router-mode kv), and the prefix-cache phase must have found blocks cached, as its
    ground truth says, or the check would pass on zeros."""
    for folder in (folder for folder in RECORDED if folder.name.startswith("dynamo-")):
        phases = recorded_phases(folder)
        cached = "dynamo_component_router_kv_selected_cached_prefix_tokens_total"
        for name in ("dynamo_component_router_input_sequence_tokens_sum", cached):
            assert all(_total(page, name) is not None for _, page, _ in phases), (folder.name, name)
        at = next(i for i, (name, _, _) in enumerate(phases) if name.endswith("-prefix-cache"))
        (_, page, truth), before = phases[at], phases[at - 1][1] if at else ""
        assert truth["prefix_cache"]["cached_tokens"] > 0, folder.name
        assert _added(before, page, cached) == truth["prefix_cache"]["cached_tokens"]


def _lora_lists(page: str) -> dict[str, float]:
    """vllm:lora_requests_info's running lists on a page, each with the time it was last set."""
    prefix = "vllm:lora_requests_info{"
    return {line.split('running_lora_adapters="', 1)[1].split('"', 1)[0]: float(line.rsplit(maxsplit=1)[1])
            for line in page.splitlines() if line.startswith(prefix)}


def test_the_recorded_vllm_lora_phases_show_what_the_replay_checks_and_what_it_says_is_not_measured():
    """The LoRA phase's requests to adapters are counted under the base model's name (so requests per adapter are
    not measured), and the page read mid-flight has the adapters the client held open as its latest list (so the
    replay's adapter count is checked on a list that is not empty)."""
    for folder in (folder for folder in RECORDED if folder.name.startswith("vllm-")):
        phases = {name.split("-", 1)[1]: (page, truth) for name, page, truth in recorded_phases(folder)}
        before, _ = phases["prefix-cache"]
        page, truth = phases["lora"]
        adapters = truth["server"]["lora_adapters"]
        assert all(truth["lora"]["requests"][name] > 0 for name in adapters), folder.name
        added = _added(before, page, "vllm:request_success_total")
        assert added == sum(truth["lora"]["requests"].values()) == truth["counts"]["sent"], folder.name
        assert not [line for line in page.splitlines() if any(f'model_name="{name}"' in line for name in adapters)]
        # Three adapters sent at once, two slots: as many ran together as there are slots, never more.
        widest = max(len(listed.split(",")) for listed in _lora_lists(page) if listed)
        assert widest == truth["server"]["max_loras"] < len(adapters), folder.name
        page, truth = phases["lora-running"]
        lists = _lora_lists(page)
        assert truth["lora"]["running"] and max(lists, key=lists.__getitem__) == ",".join(truth["lora"]["running"])
        assert _lora_lists(phases["idle"][0]) == {}, "the replay expects no LoRA list before the first request"


def test_a_replayed_phase_grows_by_what_the_phase_added():
    before = "# TYPE c_total counter\nc_total{a=\"1\"} 5.0\n# TYPE g gauge\ng 3.0\n"
    after = "# TYPE c_total counter\nc_total{a=\"1\"} 8.0\nc_total_created{a=\"1\"} 1.7e9\n# TYPE g gauge\ng 1.0\n"
    page = replayed_phase(before, after)
    assert page(2) == f'# TYPE c_total counter\nc_total{{a="1"}} 6.0\n# TYPE g gauge\ng 1.0\n' \
                      f"# TYPE {REPLAY_CLOCK} counter\n{REPLAY_CLOCK} 2\n"


@pytest.mark.integration
@pytest.mark.parametrize("folder", RECORDED, ids=lambda folder: folder.name)
def test_recorded_pages_are_read_as_their_ground_truth_says(folder, prometheus, tmp_path):
    assert_agree(replay(folder, prometheus, tmp_path))


def test_the_recorded_triton_pages_moved_every_failure_reason_they_are_checked_against():
    """The Triton replay checks errors, rejections and cancellations: the last page must have counted each
    (BACKEND, REJECTED, CANCELED), or the checks would pass on zeros."""
    for folder in (folder for folder in RECORDED if folder.name.startswith("triton-")):
        last = recorded_phases(folder)[-1][1]
        for reason in ("BACKEND", "REJECTED", "CANCELED"):
            moved = [line for line in last.splitlines() if line.startswith("nv_inference_request_failure{")
                     and f'reason="{reason}"' in line and float(line.rsplit(maxsplit=1)[1]) > 0]
            assert moved, (folder.name, reason)
