"""SimNPO: the pure loss by hand, its published defaults, and forgetting on the tiny model."""

from __future__ import annotations

import pytest
import torch

from tests.unlearning.conftest import Unlearn, forget_rise, retain_rise
from unlearn_cli.trainers.simnpo import SimNPOArgs, simnpo_loss

# Two sequences: log π(y|x) = −3 over |y| = 3 tokens and −1 over 2 tokens, so the mean NLLs are 1 and 0.5.
LOG_PROBS = torch.tensor([-3.0, -1.0])
LENGTHS = torch.tensor([3, 2])


def test_simnpo_loss_by_hand() -> None:
    # beta = 2, delta = 0.5: β·meanNLL − δ = [2·1 − 0.5, 2·0.5 − 0.5] = [1.5, 0.5]
    # log σ(1.5) = −log(1 + e^−1.5) = −0.20141328;  log σ(0.5) = −log(1 + e^−0.5) = −0.47407698
    # −(2/β)·(sum)/2 = (0.20141328 + 0.47407698)/2 = 0.33774513
    loss = simnpo_loss(LOG_PROBS, LENGTHS, beta=2.0, delta=0.5)
    assert float(loss) == pytest.approx(0.33774513, abs=1e-6)


def test_delta_is_the_papers_margin_subtracted_after_scaling() -> None:
    # open-unlearning's code computes σ(β·(meanNLL − δ)) = σ(2·[0.5, 0]) = σ([1, 0]), which would give
    # (−log σ(1) − log σ(0))/2 = (0.31326169 + 0.69314718)/2 = 0.50320443; the paper's σ(β·meanNLL − δ)
    # gives 0.33774513 (above).
    loss = simnpo_loss(LOG_PROBS, LENGTHS, beta=2.0, delta=0.5)
    assert float(loss) != pytest.approx(0.50320443, abs=1e-3)
    # at delta = 0 both agree: β·meanNLL = [2, 1]; (−log σ(2) − log σ(1))/2 = (0.12692801 + 0.31326169)/2
    assert float(simnpo_loss(LOG_PROBS, LENGTHS, beta=2.0)) == pytest.approx(0.22009485, abs=1e-6)


def test_simnpo_divides_by_the_given_number_of_sequences() -> None:
    # the step has 4 sequences (2 more in another micro-batch): 0.67549026 / 4 = 0.16887257
    loss = simnpo_loss(LOG_PROBS, LENGTHS, beta=2.0, delta=0.5, num_sequences=torch.tensor(4))
    assert float(loss) == pytest.approx(0.16887257, abs=1e-6)


def test_sequences_without_answer_tokens_do_not_count() -> None:
    # a third sequence with no answer tokens adds nothing and is not in the default denominator
    loss = simnpo_loss(torch.tensor([-3.0, -1.0, 0.0]), torch.tensor([3, 2, 0]), beta=2.0, delta=0.5)
    assert float(loss) == pytest.approx(0.33774513, abs=1e-6)


def test_simnpo_gradient_is_length_normalised() -> None:
    # x = −β·logπ/|y| − δ; d/dlogπ of −(2/β)·log σ(x) = −(2/β)·σ(−x)·(−β/|y|) = (2/|y|)·σ(−x)
    # one sequence, β = 2, δ = 0, logπ = −3, |y| = 3: x = 2, (2/3)·σ(−2) = (2/3)·0.11920292 = 0.07946861
    # (positive: a descent step lowers log π)
    log_probs = torch.tensor([-3.0], requires_grad=True)
    simnpo_loss(log_probs, torch.tensor([3]), beta=2.0).backward()
    assert log_probs.grad is not None
    assert float(log_probs.grad[0]) == pytest.approx(0.07946861, abs=1e-6)


def test_simnpo_defaults_are_the_published_ones() -> None:
    args = SimNPOArgs()
    assert (args.delta, args.beta, args.alpha, args.gamma, args.retain_loss_type) == (
        0.0,
        4.5,
        1.0,
        0.125,
        "NLL",
    )


@pytest.mark.slow
def test_simnpo_forgets_and_keeps_the_retain_set(unlearn: Unlearn) -> None:
    # gamma = 0.125 is tuned for 7B models at lr 1e-5; on the tiny model the forget term gets alpha's weight
    manifest = unlearn(
        "SimNPO",
        "trainer.args.learning_rate=1e-3",
        "trainer.args.num_train_epochs=5",
        "trainer.method_args.gamma=1.0",
    )
    assert forget_rise(manifest) > 1.0, manifest
    assert retain_rise(manifest) < 0.1 * forget_rise(manifest), manifest
