"""CE-U: the pure loss by hand, the skipped first answer tokens, its step-global denominator (the base
trainer's `extra_counts`, summed over micro-batches and ranks), and forgetting on the tiny model."""

from __future__ import annotations

import math

import pytest
import torch
from dependency_injector import providers

from tests.unlearning.conftest import Unlearn, forget_rise
from unlearn_cli.trainers.base import BatchCounts
from unlearn_cli.trainers.ceu import CEU, COUNTED_TOKENS, CEUArgs, ceu_loss, counted_positions

# One sequence of 4 tokens over a vocabulary of 3; the answer is tokens 1..3 (labels 0, 2, 1). At every
# position the logits are [0, 0, ln 2]: softmax [0.25, 0.25, 0.5], log-softmax [ln .25, ln .25, ln .5].
# Target without the true token y: y = 0 → [0, 1/3, 2/3]; y = 2 → [1/2, 1/2, 0]; y = 1 → [1/3, 0, 2/3].
# Cross-entropies: y = 0 or 1: −(1/3·ln .25 + 2/3·ln .5) = 0.92419624; y = 2: −ln .25 = 1.38629436.
LABELS = torch.tensor([[-100, 0, 2, 1]])


def logits() -> torch.Tensor:
    return torch.tensor([[[0.0, 0.0, math.log(2.0)]] * 4])


def test_ceu_loss_by_hand() -> None:
    # n = 1 skips the first answer token (y = 0): (1.38629436 + 0.92419624)/2 = 1.15524530
    assert float(ceu_loss(logits(), LABELS, 1)) == pytest.approx(1.15524530, abs=1e-6)
    # n = 0 counts all three: (0.92419624 + 1.38629436 + 0.92419624)/3 = 1.07822895
    assert float(ceu_loss(logits(), LABELS, 0)) == pytest.approx(1.07822895, abs=1e-6)
    # n = 3 leaves nothing to count
    assert float(ceu_loss(logits(), LABELS, 3)) == 0.0


def test_ceu_divides_by_the_given_number_of_counted_tokens() -> None:
    # 5 counted tokens in the step: 2.31049060 / 5 = 0.46209812
    loss = ceu_loss(logits(), LABELS, 1, num_tokens=torch.tensor(5))
    assert float(loss) == pytest.approx(0.46209812, abs=1e-6)


def test_ceu_target_is_a_constant_of_the_gradient() -> None:
    # d/dz of CE(q, softmax(z)) with q held fixed is (softmax(z) − q)/N, N = 2 counted positions (n = 1):
    # position 1 (y = 2): ([.25, .25, .5] − [.5, .5, 0])/2 = [−0.125, −0.125, 0.25]
    # position 2 (y = 1): ([.25, .25, .5] − [1/3, 0, 2/3])/2 = [−0.04166667, 0.125, −0.08333333]
    # position 0 (skipped) and 3 (predicts nothing): 0
    z = logits().requires_grad_()
    ceu_loss(z, LABELS, 1).backward()
    assert z.grad is not None
    expected = torch.tensor(
        [[[0.0, 0.0, 0.0], [-0.125, -0.125, 0.25], [-1 / 24, 0.125, -1 / 12], [0.0, 0.0, 0.0]]]
    )
    assert torch.allclose(z.grad, expected, atol=1e-6)


def test_counted_positions_skip_each_answers_first_tokens() -> None:
    # n = 2: a 3-token answer keeps its last token; a 1-token answer keeps nothing
    labels = torch.tensor([[-100, 5, 6, 7], [-100, -100, 5, -100]])
    counted = counted_positions(labels, 2)
    assert counted.tolist() == [[False, False, True], [False, False, False]]


def test_ceu_defaults_are_the_published_ones() -> None:
    assert CEUArgs().ignore_first_n_answer_tokens == 1
    assert CEU.contract.splits == ("forget",)


PROMPT = [11, 12]


def _micro_batch(answers: list[list[int]]) -> dict:
    """{forget: ...}: each row the two prompt tokens then its answer (labelled), right-padded."""
    length = len(PROMPT) + max(len(answer) for answer in answers)
    input_ids = torch.zeros(len(answers), length, dtype=torch.long)
    labels = torch.full((len(answers), length), -100)
    attention_mask = torch.zeros(len(answers), length, dtype=torch.long)
    for row, answer in enumerate(answers):
        end = len(PROMPT) + len(answer)
        input_ids[row, :end] = torch.tensor(PROMPT + answer)
        labels[row, len(PROMPT) : end] = torch.tensor(answer)
        attention_mask[row, :end] = 1
    return {"forget": {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}}


# n = 2. Micro-batch 1: answers of 4 tokens (2 counted) and 1 token (shorter than n: 0 counted).
# Micro-batch 2: one answer of 3 tokens (1 counted). The step counts 3 tokens; its labelled tokens minus
# n per sequence would give 8 − 2·3 = 2.
FIRST = _micro_batch([[20, 21, 22, 23], [24]])
SECOND = _micro_batch([[25, 26, 27]])
BOTH = _micro_batch([[20, 21, 22, 23], [24], [25, 26, 27]])


@pytest.fixture
def ceu_trainer() -> CEU:
    from transformers import AutoModelForCausalLM

    from unlearn_cli.builtin import resolve_builtin
    from unlearn_cli.container import pipeline_for
    from unlearn_cli.recipes import load_recipe

    small = "builtin://fictitious-authors?authors=4&facts=5"
    recipe = load_recipe(
        "quickstart/unlearn",
        [
            "finetuned_model=builtin://tiny-llama",
            f'data.forget.authors_forget.args.hf_args.path="{small}"',
            f'data.retain.authors_retain.args.hf_args.path="{small}"',
            'forget_split="forget10"',
            'retain_split="retain90"',
            "trainer.handler=CEU",
            "~trainer.method_args",
            "trainer.method_args.ignore_first_n_answer_tokens=2",
        ],
    )
    pipeline = pipeline_for(recipe)
    model = AutoModelForCausalLM.from_pretrained(resolve_builtin("builtin://tiny-llama"))
    pipeline.model.override(providers.Object(model))
    trainer = pipeline.trainer()
    assert isinstance(trainer, CEU)
    return trainer


def test_extra_counts_are_summed_over_micro_batches(ceu_trainer: CEU) -> None:
    counts = ceu_trainer._get_num_items_in_batch([FIRST, SECOND], torch.device("cpu"))
    assert isinstance(counts, BatchCounts)
    assert int(counts.extra[COUNTED_TOKENS]) == 3
    assert (int(counts["forget"].tokens), int(counts["forget"].sequences)) == (8, 3)


def test_extra_counts_are_summed_over_ranks(ceu_trainer: CEU, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ranks, each with the same two micro-batches: every count doubles, the loss scale is 2."""
    monkeypatch.setattr(type(ceu_trainer.args), "world_size", property(lambda self: 2))
    monkeypatch.setattr(ceu_trainer.accelerator, "gather", lambda tensor: torch.cat([tensor, tensor]))
    counts = ceu_trainer._get_num_items_in_batch([FIRST, SECOND], torch.device("cpu"))
    assert int(counts.extra[COUNTED_TOKENS]) == 6 and counts.scale == 2
    assert (int(counts["forget"].tokens), int(counts["forget"].sequences)) == (16, 6)


def test_accumulated_micro_batches_give_the_whole_batchs_loss(ceu_trainer: CEU) -> None:
    """Summing each micro-batch's loss over the step's count equals the loss of the batch in one piece."""
    model = ceu_trainer.model
    model.eval()
    counts = ceu_trainer._get_num_items_in_batch([FIRST, SECOND], torch.device("cpu"))
    with torch.no_grad():
        accumulated = ceu_trainer.compute_loss(model, FIRST, num_items_in_batch=counts)
        accumulated += ceu_trainer.compute_loss(model, SECOND, num_items_in_batch=counts)
        whole = ceu_trainer.compute_loss(model, BOTH)
        forget = BOTH["forget"]
        mean = ceu_loss(model(forget["input_ids"]).logits, forget["labels"], 2)  # over its 3 counted tokens
    assert float(accumulated) == pytest.approx(float(whole), rel=1e-5)
    assert float(whole) == pytest.approx(float(mean), rel=1e-5) and float(whole) > 0


@pytest.mark.slow
def test_ceu_forgets(unlearn: Unlearn) -> None:
    manifest = unlearn("CEU", "trainer.args.learning_rate=1e-3", "trainer.args.num_train_epochs=2")
    assert forget_rise(manifest) > 2.0, manifest
