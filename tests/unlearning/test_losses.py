"""Loss building blocks and the first methods' losses against values worked out by hand.

The shared example: one sequence of 3 positions over a 2-token vocabulary, labels [-100, 0, 1], so two
positions are scored: position 0 (logits [0, 0], p = [1/2, 1/2]) predicts token 0 with NLL ln 2, and
position 1 (logits [ln 3, 0], p = [3/4, 1/4]) predicts token 1 with NLL ln 4. Position 2's logits predict
nothing. Total NLL = ln 8 = 2.0794415; token mean = ln 8 / 2 = 1.0397208.
"""

from __future__ import annotations

import math

import pytest
import torch

from unlearn_cli.trainers.grad_ascent import gradient_ascent_loss
from unlearn_cli.trainers.losses import (
    kl_to_reference,
    labelled_tokens,
    nll_loss,
    sequence_log_probs,
    token_nll,
)
from unlearn_cli.trainers.npo import npo_loss

LN3 = math.log(3)
LOGITS = torch.tensor([[[0.0, 0.0], [LN3, 0.0], [5.0, -5.0]]])
LABELS = torch.tensor([[-100, 0, 1]])


def test_token_nll_scores_labelled_next_tokens_only() -> None:
    nll, mask = token_nll(LOGITS, LABELS)
    assert mask.tolist() == [[True, True]]
    assert nll[0].tolist() == pytest.approx([0.6931472, 1.3862944])  # ln 2, ln 4


def test_nll_loss_is_a_token_mean_unless_given_the_step_count() -> None:
    assert float(nll_loss(LOGITS, LABELS)) == pytest.approx(1.0397208)  # ln 8 / 2
    assert float(nll_loss(LOGITS, LABELS, num_tokens=4)) == pytest.approx(0.5198604)  # ln 8 / 4


def test_gradient_ascent_is_the_negated_nll() -> None:
    assert float(gradient_ascent_loss(LOGITS, LABELS)) == pytest.approx(-1.0397208)
    assert float(gradient_ascent_loss(LOGITS, LABELS, num_tokens=torch.tensor(4))) == pytest.approx(
        -0.5198604
    )


def test_sequence_log_probs_sum_the_answer_tokens() -> None:
    assert sequence_log_probs(LOGITS, LABELS).tolist() == pytest.approx([-2.0794415])  # -ln 8
    padded = torch.tensor([[-100, 0, -100]])
    assert sequence_log_probs(LOGITS, padded).tolist() == pytest.approx([-0.6931472])  # -ln 2
    assert labelled_tokens(torch.tensor([[-100, 0, 1], [-100, -100, 4]])).tolist() == [2, 1]


def test_kl_to_the_reference_over_labelled_positions() -> None:
    # model p = [1/2, 1/2], reference q = [3/4, 1/4] at the one labelled position:
    # KL(q || p) = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.3040988 - 0.1732868 = 0.1308120
    logits = torch.tensor([[[0.0, 0.0], [9.0, 0.0]]])
    reference = torch.tensor([[[LN3, 0.0], [0.0, 9.0]]])  # position 1 predicts nothing: ignored
    labels = torch.tensor([[-100, 1]])
    assert float(kl_to_reference(logits, reference, labels)) == pytest.approx(0.1308120, abs=1e-6)
    assert float(kl_to_reference(logits, reference, labels, num_tokens=2)) == pytest.approx(
        0.0654060, abs=1e-6
    )
    assert float(kl_to_reference(logits, logits, labels)) == pytest.approx(0.0, abs=1e-7)


def test_npo_loss() -> None:
    # beta = 0.1; log-ratios (log π - log π_ref) = [-1, 0]
    # log σ(-0.1 · -1) = -ln(1 + e^-0.1) = -0.6443967 ; log σ(0) = -ln 2 = -0.6931472
    # -(2 / 0.1) · (-0.6443967 - 0.6931472) / 2 = 13.3754384
    log_probs = torch.tensor([-2.0, -1.0])
    reference = torch.tensor([-1.0, -1.0])
    assert float(npo_loss(log_probs, reference, beta=0.1)) == pytest.approx(13.3754384, rel=1e-6)
    assert float(npo_loss(log_probs, reference, beta=0.1, num_sequences=4)) == pytest.approx(
        6.6877192, rel=1e-6
    )


def test_npo_pushes_the_log_probability_down_and_fades_as_it_falls() -> None:
    reference = torch.tensor([-1.0])
    near = torch.tensor([-1.0], requires_grad=True)
    far = torch.tensor([-30.0], requires_grad=True)
    npo_loss(near, reference, beta=0.1).backward()
    npo_loss(far, reference, beta=0.1).backward()
    # d/dx of -(2/β) log σ(-β x) is 2 σ(β x): 1.0 at x = 0, 2 σ(-2.9) = 0.0984 at x = -29
    assert float(near.grad) == pytest.approx(1.0)
    assert float(far.grad) == pytest.approx(2 / (1 + math.exp(2.9)), rel=1e-5)
