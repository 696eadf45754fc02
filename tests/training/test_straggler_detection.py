"""Straggler detection's false positives, measured (straggler_false_positives.py; docs/training.md quotes a longer
run): on the simulated NCCL job with no straggler, on a real gloo job with no rank slowed, and the controls that
show the measure can flag: the simulation with stragglers injected, the real job with one rank slowed."""

from __future__ import annotations

import pytest

from tests.training import straggler_false_positives as measure


def test_the_simulated_job_flags_no_rank_without_a_straggler_and_flags_injected_ones():
    quiet = measure.simulated(hours=0.5, seed=1)
    assert quiet.samples == 0.5 * 3600 / measure.SIM_SCRAPE_SECONDS * 16  # 8 local ranks in 2 communicators
    assert quiet.flagged == 0 and quiet.alerts == 0
    control = measure.simulated(hours=0.5, seed=1, straggler_mean_interval=300.0)
    assert control.flagged > 0 and control.max_lateness > control.threshold


@pytest.mark.integration
def test_a_real_gloo_job_flags_the_slowed_rank_only():
    pytest.importorskip("torch.distributed")
    quiet = measure.real(seconds=20, ranks=2)
    assert quiet.samples >= 2 * 5, "the collector saw the job's ranks"
    assert quiet.rate <= 0.05, quiet.summary()
    slowed = measure.real(seconds=20, ranks=2, slow_rank=1, slow_seconds=0.1)
    assert slowed.slowed_samples >= 5 and slowed.detection_rate >= 0.9, slowed.summary()
    assert slowed.rate <= 0.05, slowed.summary()
