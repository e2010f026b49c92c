"""The shared scoring pass: a prompt run once for all its answers gives what whole sequences give."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.evals.conftest import SMALL_AUTHORS
from unlearn_cli.evals import scoring
from unlearn_cli.evals.scoring import ScorePool
from unlearn_cli.evals.tofu import TOFU


def test_answers_continuing_a_shared_prompt_score_like_whole_sequences(
    tiny_model: Any, tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tofu = TOFU(tiny_tokenizer, tofu_path=SMALL_AUTHORS, metrics=[])
    datasets = [tofu.dataset(name) for name in ("forget", "forget_para", "forget_pert", "holdout")]
    shared = ScorePool(tiny_model, eos_token_id=tiny_tokenizer.eos_token_id, pad_token_id=0, batch_size=5)
    for dataset in datasets:
        shared.expect(dataset)
    together = [s for dataset in datasets for s in shared.scores(dataset)]
    assert shared.forward_passes == 4 + 4 + 12 + 4
    monkeypatch.setattr(scoring, "_cache_argument", lambda model: None)
    whole = ScorePool(tiny_model, eos_token_id=tiny_tokenizer.eos_token_id, pad_token_id=0, batch_size=3)
    alone = [s for dataset in datasets for s in whole.scores(dataset)]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.token_log_probs, b.token_log_probs, rtol=0, atol=1e-4)
        np.testing.assert_allclose(a.token_zscores, b.token_zscores, rtol=0, atol=1e-3)
        assert a.ends_with_eos and b.ends_with_eos
    # argmax ties aside, the same greedy hits
    agreement = np.mean(
        [np.mean(a.greedy_hits == b.greedy_hits) for a, b in zip(together, alone, strict=True)]
    )
    assert agreement > 0.99


def test_batches_keep_an_items_answers_together_and_are_independent_of_ranks() -> None:
    import torch

    def sequence(prompt: list[int], answer: list[int]) -> scoring._Sequence:
        return scoring._Sequence(torch.tensor(prompt), torch.tensor(answer), True)

    todo = {
        b"a1": sequence([1, 2], [5, 6]),
        b"b1": sequence([1, 2, 3, 4], [7]),
        b"a2": sequence([1, 2], [5, 6, 7, 8]),
        b"b2": sequence([1, 2, 3, 4], [9, 9, 9]),
        b"c1": sequence([4], [5]),
    }
    # the longest group first (4 + 3 tokens), then (2 + 4), then (1 + 1); batches of three
    assert scoring._batches(todo, 3) == [[b"b1", b"b2", b"a1"], [b"a2", b"c1"]]
