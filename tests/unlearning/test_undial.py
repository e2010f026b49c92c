"""UNDIAL: the pure loss by hand (answer positions only, reference held constant), its published defaults
and reference need, and forgetting on the tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from tests.unlearning.conftest import Unlearn, forget_rise
from unlearn_cli.trainers.undial import UNDIAL, UNDIALArgs, undial_loss

# One sequence of 3 tokens over a vocabulary of 2; the answer is tokens 1 and 2 (labels 0 then 1); β = ln 3.
# Position 0: reference [ln 3, 0], y = 0 → adjusted [0, 0] → target [0.5, 0.5]; model [ln 3, 0] →
#   log-softmax [ln .75, ln .25]; CE = −(0.5·ln .75 + 0.5·ln .25) = 0.83698822
# Position 1: reference [0, 0], y = 1 → adjusted [0, −ln 3] → target [0.75, 0.25]; model [0, 0] → CE = ln 2
#   = 0.69314718
LABELS = torch.tensor([[-100, 0, 1]])
BETA = math.log(3.0)


def logits() -> torch.Tensor:
    return torch.tensor([[[math.log(3.0), 0.0], [0.0, 0.0], [7.0, -7.0]]])


def reference_logits() -> torch.Tensor:
    return torch.tensor([[[math.log(3.0), 0.0], [0.0, 0.0], [-3.0, 3.0]]])


def test_undial_loss_by_hand() -> None:
    # (0.83698822 + 0.69314718)/2 = 0.76506770
    loss = undial_loss(logits(), reference_logits(), LABELS, BETA)
    assert float(loss) == pytest.approx(0.76506770, abs=1e-6)
    # β = 0 distils toward the reference itself: position 0 target [.75, .25] against [.75, .25]:
    # −(.75·ln .75 + .25·ln .25) = 0.56233514; position 1 as above with target [.5, .5]: ln 2 = 0.69314718
    # (0.56233514 + 0.69314718)/2 = 0.62774116
    loss = undial_loss(logits(), reference_logits(), LABELS, 0.0)
    assert float(loss) == pytest.approx(0.62774116, abs=1e-6)


def test_undial_divides_by_the_given_number_of_tokens() -> None:
    # 4 answer tokens in the step: 1.53013540 / 4 = 0.38253385
    loss = undial_loss(logits(), reference_logits(), LABELS, BETA, num_tokens=torch.tensor(4))
    assert float(loss) == pytest.approx(0.38253385, abs=1e-6)


def test_only_answer_positions_count_and_the_reference_gets_no_gradient() -> None:
    # A prompt position in front changes nothing (open-unlearning's code would average it in too).
    prompt_z = torch.cat([torch.tensor([[[9.0, -9.0]]]), logits()], dim=1)
    prompt_ref = torch.cat([torch.tensor([[[-9.0, 9.0]]]), reference_logits()], dim=1)
    longer = undial_loss(prompt_z, prompt_ref, torch.tensor([[-100, -100, 0, 1]]), BETA)
    assert float(longer) == pytest.approx(0.76506770, abs=1e-6)
    z, reference = logits().requires_grad_(), reference_logits().requires_grad_()
    undial_loss(z, reference, LABELS, BETA).backward()
    assert reference.grad is None
    # d/dz = (softmax(z) − target)/2: position 0 ([.75, .25] − [.5, .5])/2 = [0.125, −0.125];
    # position 1 ([.5, .5] − [.75, .25])/2 = [−0.125, 0.125]
    assert z.grad is not None
    expected = torch.tensor([[[0.125, -0.125], [-0.125, 0.125], [0.0, 0.0]]])
    assert torch.allclose(z.grad, expected, atol=1e-6)


def test_undial_defaults_are_the_published_ones_and_it_keeps_a_reference_model() -> None:
    args = UNDIALArgs()
    assert (args.beta, args.alpha, args.gamma, args.retain_loss_type) == (10.0, 0.0, 1.0, "NLL")
    need = UNDIAL.reference_need(args)
    assert need.model and need.log_probs == ()


@pytest.mark.slow
def test_undial_forgets(unlearn: Unlearn) -> None:
    # the adjusted target bounds how far the answer NLL can rise (≈ 2.4 here, from 0.02): no runaway ascent
    manifest = unlearn("UNDIAL", "trainer.args.learning_rate=3e-3", "trainer.args.num_train_epochs=5")
    assert forget_rise(manifest) > 1.0, manifest
