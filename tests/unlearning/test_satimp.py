"""SatImp: the pure loss by hand (weights held constant), its published defaults, and forgetting on the tiny
model."""

from __future__ import annotations

import math

import pytest
import torch

from tests.unlearning.conftest import Unlearn, forget_rise, retain_rise
from unlearn_cli.trainers.satimp import SatImpArgs, satimp_loss

# One sequence of 3 tokens over a vocabulary of 2; the answer is tokens 1 and 2 (labels 0 then 1).
# logits[0] = logits[1] = [ln 3, 0]: p = 0.75 at the first answer position, 0.25 at the second;
# NLLs 0.28768207 and 1.38629436.
LABELS = torch.tensor([[-100, 0, 1]])


def logits() -> torch.Tensor:
    return torch.tensor([[[math.log(3.0), 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]])


def test_satimp_loss_by_hand() -> None:
    # beta1 = beta2 = 1: weights 0.75·0.25 = 0.25·0.75 = 0.1875
    # −0.1875·(0.28768207 + 1.38629436)/2 = −0.15693529
    assert float(satimp_loss(logits(), LABELS, 1.0, 1.0)) == pytest.approx(-0.15693529, abs=1e-6)
    # beta1 = 5, beta2 = 1: weights 0.75^5·0.25 = 0.05932617, 0.25^5·0.75 = 0.00073242
    # −(0.05932617·0.28768207 + 0.00073242·1.38629436)/2 = −(0.01706708 + 0.00101535)/2 = −0.00904121
    assert float(satimp_loss(logits(), LABELS, 5.0, 1.0)) == pytest.approx(-0.00904121, abs=1e-7)
    # beta1 = 2, beta2 = 3: weights 0.5625·0.015625 = 0.00878906, 0.0625·0.421875 = 0.02636719
    # −(0.00878906·0.28768207 + 0.02636719·1.38629436)/2 = −(0.00252845 + 0.03655268)/2 = −0.01954057
    assert float(satimp_loss(logits(), LABELS, 2.0, 3.0)) == pytest.approx(-0.01954057, abs=1e-7)


def test_satimp_divides_by_the_given_number_of_tokens() -> None:
    # 4 answer tokens in the step: −0.31387058 / 4 = −0.07846765
    loss = satimp_loss(logits(), LABELS, 1.0, 1.0, num_tokens=torch.tensor(4))
    assert float(loss) == pytest.approx(-0.07846765, abs=1e-6)


def test_satimp_weights_are_constants_of_the_gradient() -> None:
    # beta1 = beta2 = 1, both weights 0.1875: d/dz = −0.1875·(softmax(z) − onehot(y))/2
    # position 0: −0.1875·[−0.25, 0.25]/2 = [0.0234375, −0.0234375]
    # position 1: −0.1875·[0.75, −0.75]/2 = [−0.0703125, 0.0703125]
    z = logits().requires_grad_()
    satimp_loss(z, LABELS, 1.0, 1.0).backward()
    assert z.grad is not None
    expected = torch.tensor([[[0.0234375, -0.0234375], [-0.0703125, 0.0703125], [0.0, 0.0]]])
    assert torch.allclose(z.grad, expected, atol=1e-6)


def test_satimp_defaults_are_the_published_ones() -> None:
    args = SatImpArgs()
    assert (args.beta1, args.beta2, args.alpha, args.gamma, args.retain_loss_type) == (
        5.0,
        1.0,
        1.0,
        0.1,
        "NLL",
    )


@pytest.mark.slow
def test_satimp_forgets_and_keeps_the_retain_set(unlearn: Unlearn) -> None:
    # The fine-tune recites its answers (p ≈ 0.98), where p^5·(1 − p) ≈ 0.02: at gamma = 0.1 the forget term
    # barely moves the tiny model (a fixed point of sorts), so this run raises gamma to let it start.
    manifest = unlearn(
        "SatImp",
        "trainer.args.learning_rate=1e-3",
        "trainer.args.num_train_epochs=5",
        "trainer.method_args.gamma=30.0",
    )
    assert forget_rise(manifest) > 2.0, manifest
    assert retain_rise(manifest) < 0.1 * forget_rise(manifest), manifest
