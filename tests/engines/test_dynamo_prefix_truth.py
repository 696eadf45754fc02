"""The Dynamo lab's ground truth for the KV router's prefix-cache counters (dynamo_lab.prefix_cache_truth), on
prompts whose answer is worked out by hand: what the router routes, which full blocks it can find cached, and a
prompt that the tokenizer did not count one token a word refused."""

from __future__ import annotations

import pytest

from tests.engines.dynamo_lab import BLOCK_SIZE, prefix_cache_truth
from tests.engines.traffic import Completion


def _words(n: int, word: str = "serve") -> list[str]:
    return [f"{word}{i % 4}" for i in range(n)]


def _answered(n: int) -> Completion:
    return Completion("success", 200, "length", n, 8)


def test_a_long_prompt_sent_again_is_found_cached_in_its_full_blocks():
    prompt = _words(200)  # 3 full blocks of 64 and 8 tokens
    truth = prefix_cache_truth([(prompt, _answered(200)) for _ in range(3)], [])
    assert BLOCK_SIZE == 64
    assert truth == {"block_size": 64, "routed_tokens": 600, "cached_tokens": 2 * 192}


def test_only_the_full_blocks_a_prompt_shares_from_its_start_count():
    first, second = _words(200), _words(130) + _words(70, "batch")  # the first 130 tokens alike: 2 full blocks
    truth = prefix_cache_truth([(first, _answered(200)), (second, _answered(200))], [])
    assert truth["cached_tokens"] == 128


def test_a_prompt_shorter_than_a_block_is_never_a_hit():
    truth = prefix_cache_truth([(_words(63), _answered(63)) for _ in range(4)], [])
    assert truth == {"block_size": 64, "routed_tokens": 4 * 63, "cached_tokens": 0}


def test_refused_requests_are_not_routed_and_failed_ones_store_nothing():
    prompt = _words(296)
    sent = [(prompt, Completion("too_long", 500)), (prompt, Completion("too_long", 500)),
            (prompt, Completion("overload", 529)), (prompt, Completion("unknown_model", 404)),
            (prompt, Completion("bad_parameter", 400))]
    assert prefix_cache_truth(sent, []) == {"block_size": 64, "routed_tokens": 2 * 296, "cached_tokens": 0}


def test_a_stream_the_client_left_stores_its_prompt_and_earlier_phases_count():
    served: list[list[str]] = []
    prefix_cache_truth([(_words(200), Completion("cancelled", 0))], served)
    assert prefix_cache_truth([(_words(200), _answered(200))], served)["cached_tokens"] == 192


def test_a_prompt_not_counted_one_token_a_word_is_refused():
    with pytest.raises(ValueError, match="200 words counted as 201 tokens"):
        prefix_cache_truth([(_words(200), _answered(201))], [])
