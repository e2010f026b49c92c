"""WGA: the pure loss by hand (weights held constant), its published defaults, and forgetting on the tiny
model."""

from __future__ import annotations

import math

import pytest
import torch

from tests.unlearning.conftest import Unlearn, forget_rise, retain_rise
from unlearn_cli.trainers.wga import WGAArgs, wga_loss

# One sequence of 3 tokens over a vocabulary of 2; the answer is tokens 1 and 2 (labels 0 then 1).
# logits[0] = logits[1] = [ln 3, 0], so p(label 0) = 0.75 at the first answer position and p(label 1) = 0.25
# at the second: NLLs −ln 0.75 = 0.28768207 and −ln 0.25 = 1.38629436.
LABELS = torch.tensor([[-100, 0, 1]])


def logits() -> torch.Tensor:
    return torch.tensor([[[math.log(3.0), 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]])


def test_wga_loss_by_hand() -> None:
    # beta = 1: −(0.75·0.28768207 + 0.25·1.38629436)/2 = −(0.21576155 + 0.34657359)/2 = −0.28116757
    assert float(wga_loss(logits(), LABELS, beta=1.0)) == pytest.approx(-0.28116757, abs=1e-6)
    # beta = 2: −(0.5625·0.28768207 + 0.0625·1.38629436)/2 = −(0.16182117 + 0.08664340)/2 = −0.12423228
    assert float(wga_loss(logits(), LABELS, beta=2.0)) == pytest.approx(-0.12423228, abs=1e-6)
    # beta = 0 is gradient ascent: −(0.28768207 + 1.38629436)/2 = −0.83698822
    assert float(wga_loss(logits(), LABELS, beta=0.0)) == pytest.approx(-0.83698822, abs=1e-6)


def test_wga_divides_by_the_given_number_of_tokens() -> None:
    # 4 answer tokens in the step: −0.56233514 / 4 = −0.14058379
    loss = wga_loss(logits(), LABELS, beta=1.0, num_tokens=torch.tensor(4))
    assert float(loss) == pytest.approx(-0.14058379, abs=1e-6)


def test_wga_weights_are_constants_of_the_gradient() -> None:
    # d/dz of −w·NLL with w held fixed is −w·(softmax(z) − onehot(y))/2:
    # position 0: −0.75·([0.75, 0.25] − [1, 0])/2 = [0.09375, −0.09375]
    # position 1: −0.25·([0.75, 0.25] − [0, 1])/2 = [−0.09375, 0.09375]; position 2 predicts nothing: 0
    z = logits().requires_grad_()
    wga_loss(z, LABELS, beta=1.0).backward()
    assert z.grad is not None
    expected = torch.tensor([[[0.09375, -0.09375], [-0.09375, 0.09375], [0.0, 0.0]]])
    assert torch.allclose(z.grad, expected, atol=1e-6)


def test_wga_defaults_are_the_published_ones() -> None:
    args = WGAArgs()
    assert (args.beta, args.alpha, args.gamma, args.retain_loss_type) == (1.0, 1.0, 1.0, "NLL")


@pytest.mark.slow
def test_wga_forgets_and_keeps_the_retain_set(unlearn: Unlearn) -> None:
    manifest = unlearn("WGA", "trainer.args.learning_rate=1e-3", "trainer.args.num_train_epochs=5")
    assert forget_rise(manifest) > 2.0, manifest
    assert retain_rise(manifest) < 0.1 * forget_rise(manifest), manifest
