"""DPO: the pure loss by hand, cached against per-step reference log-probs, the paired-data contract, and
forgetting on the tiny model."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from dependency_injector import providers

from tests.unlearning.conftest import Unlearn, forget_rise, retain_rise
from unlearn_cli.trainers.base import BatchCounts, model_inputs
from unlearn_cli.trainers.dpo import DPO, DPOArgs, concatenated, dpo_loss
from unlearn_cli.trainers.losses import sequence_log_probs

# Two pairs. Pair 1: preferred log-ratio −2 − (−3) = 1, dispreferred −4 − (−2) = −2, margin 1 − (−2) = 3.
# Pair 2: every log-prob −1, margin 0.
PREFERRED, PREFERRED_REF = torch.tensor([-2.0, -1.0]), torch.tensor([-3.0, -1.0])
DISPREFERRED, DISPREFERRED_REF = torch.tensor([-4.0, -1.0]), torch.tensor([-2.0, -1.0])


def test_dpo_loss_by_hand() -> None:
    # beta = 1: log σ(3) = −0.04858735, log σ(0) = −0.69314718; −(2/1)·(sum)/2 = 0.74173453
    loss = dpo_loss(PREFERRED, PREFERRED_REF, DISPREFERRED, DISPREFERRED_REF, beta=1.0)
    assert float(loss) == pytest.approx(0.74173453, abs=1e-6)
    # beta = 0.5: log σ(1.5) = −0.20141328, log σ(0) = −0.69314718; −(2/0.5)·(sum)/2 = 1.78912092
    loss = dpo_loss(PREFERRED, PREFERRED_REF, DISPREFERRED, DISPREFERRED_REF, beta=0.5)
    assert float(loss) == pytest.approx(1.78912092, abs=1e-6)


def test_dpo_divides_by_the_given_number_of_pairs() -> None:
    # 4 pairs in the step: 1.48346906 / 4 = 0.37086727
    loss = dpo_loss(PREFERRED, PREFERRED_REF, DISPREFERRED, DISPREFERRED_REF, beta=1.0, num_sequences=4)
    assert float(loss) == pytest.approx(0.37086727, abs=1e-6)


def test_swapping_preferred_and_dispreferred_flips_the_margin() -> None:
    # pair 1 alone, beta = 1: margin +3 gives −2·log σ(3) = 0.09717470; swapped, margin −3 gives
    # −2·log σ(−3) = 6.09717470; log σ(x) − log σ(−x) = x, so the difference is 2·3 = 6
    kept = dpo_loss(PREFERRED[:1], PREFERRED_REF[:1], DISPREFERRED[:1], DISPREFERRED_REF[:1], beta=1.0)
    swapped = dpo_loss(DISPREFERRED[:1], DISPREFERRED_REF[:1], PREFERRED[:1], PREFERRED_REF[:1], beta=1.0)
    assert float(kept) == pytest.approx(0.09717470, abs=1e-6)
    assert float(swapped) == pytest.approx(6.09717470, abs=1e-6)


def test_dpo_gradient_raises_the_preferred_and_lowers_the_dispreferred() -> None:
    # pair 2 (margin 0), beta = 1: d/dlogπ_w of −2·log σ(m) = −2·σ(−0) = −1; d/dlogπ_l = +1
    preferred = torch.tensor([-1.0], requires_grad=True)
    dispreferred = torch.tensor([-1.0], requires_grad=True)
    dpo_loss(preferred, torch.tensor([-1.0]), dispreferred, torch.tensor([-1.0]), beta=1.0).backward()
    assert preferred.grad is not None and dispreferred.grad is not None
    assert (float(preferred.grad[0]), float(dispreferred.grad[0])) == pytest.approx((-1.0, 1.0), abs=1e-6)


def test_dpo_defaults_and_reference_need() -> None:
    args = DPOArgs()
    assert (args.beta, args.alpha, args.gamma, args.retain_loss_type, args.ref_log_probs) == (
        0.1,
        1.0,
        1.0,
        "NLL",
        "cached",
    )
    cached = DPO.reference_need(args)
    assert not cached.model and cached.log_probs == ("forget.original", "forget.alternate")
    per_step = DPO.reference_need(DPOArgs(ref_log_probs="per_step"))
    assert per_step.model and per_step.log_probs == ()
    assert DPO.contract.item_shape("forget") == "pair" and DPO.contract.item_shape("retain") == "sequence"


SMALL = "builtin://fictitious-authors?authors=4&facts=5"
PAIRED = [
    "finetuned_model=builtin://tiny-llama",
    f'data.forget.authors_forget.args.hf_args.path="{SMALL}"',
    f'data.retain.authors_retain.args.hf_args.path="{SMALL}"',
    'forget_split="forget10"',
    'retain_split="retain90"',
    "trainer.handler=DPO",
    "data.forget.authors_forget.handler=QAwithIdkDataset",
    "data.forget.authors_forget.args.paired=true",
]


def _log_probs(model: Any, part: dict) -> torch.Tensor:
    with torch.no_grad():
        return sequence_log_probs(model(**model_inputs(part)).logits, part["labels"])


def test_cached_and_per_step_reference_log_probs_give_the_same_loss() -> None:
    """Both reference forms score the initial model; after the policy moves, the losses still agree, and the
    forget term prefers the alternate answer over the original, each against the initial model's score."""
    from transformers import AutoModelForCausalLM

    from unlearn_cli.builtin import resolve_builtin
    from unlearn_cli.container import pipeline_for
    from unlearn_cli.recipes import load_recipe
    from unlearn_cli.trainers.reference import FrozenReference

    initial = AutoModelForCausalLM.from_pretrained(resolve_builtin("builtin://tiny-llama"))
    losses = {}
    for mode in ("cached", "per_step"):
        recipe = load_recipe("quickstart/unlearn", [*PAIRED, f'trainer.method_args.ref_log_probs="{mode}"'])
        pipeline = pipeline_for(recipe)
        pipeline.model.override(providers.Object(copy.deepcopy(initial)))
        trainer = pipeline.trainer()
        assert isinstance(trainer, DPO)
        assert isinstance(trainer.reference, FrozenReference) == (mode == "per_step")
        with torch.no_grad():  # the policy moves away from the reference, as after some training
            generator = torch.Generator().manual_seed(0)
            for parameter in trainer.model.parameters():
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
        trainer.model.eval()
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
        original, alternate = batch["forget"]["original"], batch["forget"]["alternate"]
        assert ("ref_logp" in original and "ref_logp" in alternate) == (mode == "cached")
        reference = {name: _log_probs(initial, part) for name, part in (("w", alternate), ("l", original))}
        policy = {name: _log_probs(trainer.model, part) for name, part in (("w", alternate), ("l", original))}
        assert (policy["l"] - reference["l"]).abs().min() > 1e-2  # margins are not 0
        expected = dpo_loss(policy["w"], reference["w"], policy["l"], reference["l"], beta=0.1)
        with torch.no_grad():
            forget = trainer.loss_terms(trainer.model, batch, BatchCounts.of([batch]))["forget"]
            losses[mode] = float(trainer.compute_loss(trainer.model, batch))
        assert float(forget) == pytest.approx(float(expected), abs=1e-5)
    assert losses["cached"] == pytest.approx(losses["per_step"], abs=1e-5)


def test_dpo_on_single_answers_fails_validation(run_unlearn: Callable[..., Any]) -> None:
    result = run_unlearn("recipe", "validate", "quickstart/unlearn", "trainer.handler=DPO")
    assert result.code == 2 and "Traceback" not in result.stderr, result
    message = " ".join(result.stderr.split())
    assert "data.forget.authors_forget.handler" in message
    assert "trainer 'DPO' reads pairs of answers from [data.forget]" in message
    assert "QADataset gives single answers" in message
    assert "QAwithIdkDataset with args.paired = true" in message


@pytest.mark.slow
def test_dpo_forgets_and_keeps_the_retain_set(unlearn: Unlearn) -> None:
    manifest = unlearn(
        "DPO",
        "data.forget.authors_forget.handler=QAwithIdkDataset",
        "data.forget.authors_forget.args.paired=true",
        "trainer.args.learning_rate=3e-3",
        "trainer.args.num_train_epochs=5",
    )
    assert forget_rise(manifest) > 2.0, manifest
    assert retain_rise(manifest) < 0.1 * forget_rise(manifest), manifest


def _paired_pipeline(*overrides: str) -> Any:
    from transformers import AutoModelForCausalLM

    from unlearn_cli.builtin import resolve_builtin
    from unlearn_cli.container import pipeline_for
    from unlearn_cli.recipes import load_recipe

    pipeline = pipeline_for(load_recipe("quickstart/unlearn", [*PAIRED, *overrides]))
    path = resolve_builtin("builtin://tiny-llama")
    pipeline.model.override(providers.Object(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64)))
    return pipeline


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_one_forward_over_both_answers_gives_each_answers_own_log_probs(padding_side: str) -> None:
    """Both answers of each pair in one batch, padded to the longer: the same log-probs as two forwards."""
    pipeline = _paired_pipeline(
        f"collator.DataCollatorForSupervisedDataset.args.padding_side='{padding_side}'"
    )
    trainer = pipeline.trainer()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    original, alternate = batch["forget"]["original"], batch["forget"]["alternate"]
    assert original["input_ids"].shape[1] != alternate["input_ids"].shape[1]  # padding is exercised
    both = concatenated(alternate, original)
    assert torch.equal(both["ref_logp"], torch.cat([alternate["ref_logp"], original["ref_logp"]]))
    together = _log_probs(trainer.model, both)
    separate = torch.cat([_log_probs(trainer.model, alternate), _log_probs(trainer.model, original)])
    torch.testing.assert_close(together, separate, rtol=0, atol=1e-6)


def test_a_question_and_answer_repeated_over_alternates_is_scored_once() -> None:
    """TOFU-style perturbed answers pair each forget answer with three alternates: its cached reference
    log-prob is computed once and given to every pair, equal to scoring each pair's answer on its own."""
    from unlearn_cli.trainers.reference import compute_reference_log_probs, distinct_items

    pipeline = _paired_pipeline(
        "data.forget.authors_forget.handler=QAwithAlternateDataset",
        "~data.forget.authors_forget.args.paired",
        "data.forget.authors_forget.args.alternate_key='perturbed_answer'",
    )
    forget = pipeline.split_datasets()["forget"]
    firsts, rows = distinct_items(forget, ("original",))
    assert len(forget) == 3 * len(firsts) and rows.tolist() == [i // 3 for i in range(len(forget))]
    assert len(distinct_items(forget, ("alternate",))[0]) == len(forget)
    cached = pipeline.reference_log_probs()["forget"]
    one_by_one = compute_reference_log_probs(
        pipeline.model(), forget, pipeline.collator(), [("original",), ("alternate",)], batch_size=1
    )
    for path in (("original",), ("alternate",)):
        torch.testing.assert_close(cached[path], one_by_one[path], rtol=1e-6, atol=1e-6)  # float32 sums
