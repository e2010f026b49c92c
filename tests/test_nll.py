"""Mean answer NLL: token-level mean over labelled tokens, independent of batching."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from unlearn_cli.evals.nll import mean_answer_nll, token_nll_sum

LN2, LN43 = math.log(2.0), math.log(4.0 / 3.0)

# Two sequences over a vocabulary of 2. Position t predicts the label at t + 1.
LOGITS = torch.tensor(
    [
        [[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 5.0]],  # p(1)=1/2 -> ln 2; p(0)=3/4 -> ln 4/3
        [[9.0, 0.0], [0.0, math.log(3.0)], [5.0, 5.0]],  # only the last label counts: p(1)=3/4 -> ln 4/3
    ]
)
LABELS = torch.tensor([[-100, 1, 0], [-100, -100, 1]])


def test_token_nll_sum_hand_computed() -> None:
    total, count = token_nll_sum(LOGITS, LABELS)
    assert count.item() == 3
    assert total.item() == pytest.approx(LN2 + 2 * LN43, rel=1e-6)


class FixedLogitsModel(torch.nn.Module):
    """Returns the logits of the row each input sequence starts with (its first token is its row id)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=LOGITS[input_ids[:, 0]])


def _collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


@pytest.mark.parametrize("batch_size", [1, 2])
def test_mean_is_over_tokens_not_sequences_or_batches(batch_size: int) -> None:
    dataset = [
        {"input_ids": torch.tensor([row, 0, 0]), "labels": LABELS[row], "attention_mask": torch.ones(3)}
        for row in range(2)
    ]
    model = FixedLogitsModel()
    model.train()
    value = mean_answer_nll(model, dataset, _collate, batch_size=batch_size)
    assert value == pytest.approx((LN2 + 2 * LN43) / 3, rel=1e-6)
    assert value != pytest.approx(((LN2 + LN43) / 2 + LN43) / 2, rel=1e-6)  # the per-sequence mean
    assert model.training  # mode restored


def test_no_labelled_tokens_is_an_error() -> None:
    dataset = [
        {
            "input_ids": torch.tensor([0, 0, 0]),
            "labels": torch.full((3,), -100),
            "attention_mask": torch.ones(3),
        }
    ]
    with pytest.raises(ValueError, match="no labelled tokens"):
        mean_answer_nll(FixedLogitsModel(), dataset, _collate)
