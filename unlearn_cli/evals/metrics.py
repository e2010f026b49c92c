"""The registered metric functions: each turns a model's scores on a benchmark's data into one result.

A metric is ``fn(inputs: MetricInputs, **args) -> {"agg_value": ..., "value_by_index": {...}}`` registered
with ``@register("metric", NAME)``; a benchmark's table says which named result (``forget_Q_A_Prob``)
comes from which function on which data. Results have the reference framework's layout (keys of
`value_by_index` are item indices as text), so its logs and ours are interchangeable. The arithmetic lives in
`stats` (tested on hand-computed values); these functions gather the inputs and lay out the result. Those
that read the shared forward pass say so with `@reads("scores")`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from unlearn_cli.data.template import IGNORE_INDEX
from unlearn_cli.errors import UserError
from unlearn_cli.evals import stats
from unlearn_cli.evals.engine import MetricInputs, MetricResult, group_by_index, reads
from unlearn_cli.evals.generation import ROUGE_KEYS, rouge_scores
from unlearn_cli.evals.scoring import SequenceScores, answer_text, iter_items
from unlearn_cli.registry import register


def _per_index(grouped: Mapping[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """One record per item index: the option's fields, or lists of them when an index has several options
    (perturbed answers), as the reference framework lays them out."""
    several = any(len(values) > 1 for values in grouped.values())
    if not several:
        return {index: values[0] for index, values in grouped.items()}
    return {
        index: {key: [value[key] for value in values] for key in values[0]}
        for index, values in grouped.items()
    }


def _item_mean(value: Any) -> float:
    return float(np.mean(value)) if isinstance(value, list) else float(value)


def _mean_of(records: Mapping[str, Mapping[str, Any]], key: str) -> float:
    return float(np.mean([_item_mean(record[key]) for record in records.values()]))


@register("metric", "probability")
@reads("scores")
def probability(inputs: MetricInputs) -> MetricResult:
    """Probability: exp(-mean answer-token NLL) per answer; an item's options are averaged."""
    grouped = group_by_index(
        (index, {"prob": stats.probability_from_nll(s.mean_nll), "avg_loss": s.mean_nll})
        for index, s in inputs.scores()
    )
    by_index = _per_index(grouped)
    return {"agg_value": _mean_of(by_index, "prob"), "value_by_index": by_index}


def _shared_indices(correct: MetricResult, wrong: MetricResult) -> list[str]:
    right, other = correct["value_by_index"], wrong["value_by_index"]
    return [
        index for index in right if index in other and right[index] is not None and other[index] is not None
    ]


@register("metric", "probability_w_options")
def probability_w_options(inputs: MetricInputs) -> MetricResult:
    """Normalised probability: P(true) / (P(true) + sum of P(perturbed)) per item."""
    correct, wrong = inputs.results["correct"], inputs.results["wrong"]
    by_index = {}
    for index in _shared_indices(correct, wrong):
        true_probability = _item_mean(correct["value_by_index"][index]["prob"])
        options = wrong["value_by_index"][index]["prob"]
        options = options if isinstance(options, list) else [options]
        by_index[index] = {"prob": stats.normalised_probability(true_probability, options)}
    return {"agg_value": _mean_of(by_index, "prob"), "value_by_index": by_index}


@register("metric", "truth_ratio")
def truth_ratio(
    inputs: MetricInputs,
    aggregator: Literal["closer_to_1_better", "true_better", "prob_mean"] = "closer_to_1_better",
) -> MetricResult:
    """Truth ratio R = P(wrong answers) / P(correct answer) per item, aggregated for forget or kept data.

    R = exp(-mean NLL of the wrong answers) / exp(-NLL of the correct one); the aggregate is the mean of
    min(R, 1/R) (forget data), of max(0, 1-R) (data to keep), or, with "prob_mean", of
    P(correct) / (P(correct) + P(wrong)) (the reference framework's later variant)."""
    correct, wrong = inputs.results["correct"], inputs.results["wrong"]
    by_index = {}
    for index in _shared_indices(correct, wrong):
        true_nll = _item_mean(correct["value_by_index"][index]["avg_loss"])
        wrong_nll = _item_mean(wrong["value_by_index"][index]["avg_loss"])
        if aggregator == "prob_mean":
            score = 1.0 / (1.0 + np.exp(true_nll - wrong_nll))
        else:
            score = stats.truth_ratio(true_nll, [wrong_nll])
        by_index[index] = {"score": float(score)}
    ratios = [record["score"] for record in by_index.values()]
    if aggregator == "closer_to_1_better":
        value = stats.truth_ratio_closer_to_one(ratios)
    elif aggregator == "true_better":
        value = stats.truth_ratio_true_better(ratios)
    else:
        value = float(np.mean(ratios))
    return {"agg_value": value, "value_by_index": by_index}


@register("metric", "ks_test")
def ks_test(inputs: MetricInputs) -> MetricResult:
    """Forget quality: KS-test p-value of the forget truth ratios against the retain model's.

    The retain model's come from the reference logs; without them the result is null, with a warning."""
    forget = inputs.results["forget"]
    retain = inputs.reference_logs.get("retain")
    if not retain or not retain.get("value_by_index"):
        inputs.warn("no retain model logs (retain_logs_path): forget quality is null")
        return {"agg_value": None}
    ours = [record["score"] for record in forget["value_by_index"].values()]
    theirs = [record["score"] for record in retain["value_by_index"].values()]
    if len(ours) != len(theirs):
        inputs.warn(
            f"the retain model logs hold {len(theirs)} truth ratios, this evaluation {len(ours)}: were they "
            "computed on the same forget split?"
        )
    return {"agg_value": stats.ks_pvalue(ours, theirs)}


@register("metric", "hm_aggregate")
def hm_aggregate(inputs: MetricInputs) -> MetricResult:
    """Harmonic mean of the aggregates it depends on (TOFU's model utility); null if one is null."""
    values = [result.get("agg_value") for result in inputs.results.values()]
    if any(value is None for value in values):
        missing = [key for key, result in inputs.results.items() if result.get("agg_value") is None]
        inputs.warn(f"no value for {', '.join(missing)}: the harmonic mean is null")
        return {"agg_value": None}
    return {"agg_value": stats.harmonic_mean(values)}


def _reference_aggregate(inputs: MetricInputs, ref_value: float) -> float:
    retain = inputs.reference_logs.get("retain")
    if retain is None or retain.get("agg_value") is None:
        inputs.warn(f"no retain model logs (retain_logs_path): comparing with a retain AUC of {ref_value}")
        return ref_value
    return float(retain["agg_value"])


@register("metric", "privleak")
def privleak(inputs: MetricInputs, ref_value: float = 0.5) -> MetricResult:
    """PrivLeak (MUSE): relative gap (%) between this model's membership AUC and the retain model's.

    The retain model's AUC comes from the reference logs, else `ref_value` (0.5)."""
    auc = inputs.results["forget"]["agg_value"]
    reference = _reference_aggregate(inputs, ref_value)
    if reference == 1.0:
        inputs.warn("the retain model's AUC is 1 (it leaks every forget item): the relative gap is undefined")
        return {"agg_value": None}
    return {"agg_value": stats.privleak(float(auc), reference)}


@register("metric", "rel_diff")
def rel_diff(inputs: MetricInputs, ref_value: float = 0.5) -> MetricResult:
    """Relative difference (in %) of an aggregate to the retain model's."""
    value = inputs.results["forget"]["agg_value"]
    reference = _reference_aggregate(inputs, ref_value)
    if reference == 0.0:
        inputs.warn("the retain model's value is 0: the relative difference is undefined")
        return {"agg_value": None}
    return {"agg_value": stats.relative_difference(float(value), reference)}


@register("metric", "rouge")
def rouge(
    inputs: MetricInputs, rouge_type: Literal["rouge1_recall", "rougeL_f1", "rougeL_recall"] = "rougeL_recall"
) -> MetricResult:
    """ROUGE of greedy answers against the true ones (rouge-score, Porter stemming).

    Every variant (ROUGE-1 recall, ROUGE-L F1 and recall) is kept per item; `rouge_type` is aggregated."""
    grouped = group_by_index(
        (
            index,
            {
                **rouge_scores(generation.ground_truth, generation.text),
                "input": generation.prompt,
                "ground_truth": generation.ground_truth,
                "generation": generation.text,
            },
        )
        for index, generation in inputs.generations()
    )
    by_index = _per_index(grouped)
    if rouge_type not in ROUGE_KEYS:
        raise UserError(f"rouge_type must be one of {', '.join(ROUGE_KEYS)}, got {rouge_type!r}")
    return {"agg_value": _mean_of(by_index, rouge_type), "value_by_index": by_index}


@register("metric", "exact_memorization")
@reads("scores")
def exact_memorization(inputs: MetricInputs) -> MetricResult:
    """Exact memorisation: the fraction of answer tokens (eos excluded) that are greedy predictions."""
    by_index = {
        index: {"score": stats.exact_memorization(s.greedy_hits[s.answer])} for index, s in inputs.scores()
    }
    return {"agg_value": _mean_of(by_index, "score"), "value_by_index": by_index}


@register("metric", "extraction_strength")
@reads("scores")
def extraction_strength(inputs: MetricInputs) -> MetricResult:
    """Extraction strength: 1 - k/n for the longest answer suffix the model reproduces greedily.

    Given the true prefix, tokens k..n-1 (eos excluded) are the model's argmax predictions; 0 when not even
    the last one is (the reference framework floors this at 1/n)."""
    by_index = {
        index: {"score": stats.extraction_strength(s.greedy_hits[s.answer])} for index, s in inputs.scores()
    }
    return {"agg_value": _mean_of(by_index, "score"), "value_by_index": by_index}


# --- membership inference: forget items (members) against holdout items (non-members) -----------------------


def _attack(forget: list[tuple[str, float]], holdout: list[tuple[str, float]]) -> MetricResult:
    """The reference framework's MIA layout: AUC, and each side's per-item scores and mean."""
    auc = stats.mia_auc([s for _, s in forget], [s for _, s in holdout])
    return {
        "agg_value": auc,
        "auc": auc,
        "forget": _side(forget),
        "holdout": _side(holdout),
    }


def _side(scores: list[tuple[str, float]]) -> MetricResult:
    return {
        "agg_value": float(np.mean([s for _, s in scores])),
        "value_by_index": {index: {"score": float(score)} for index, score in scores},
    }


@register("metric", "mia_loss")
@reads("scores")
def mia_loss(inputs: MetricInputs) -> MetricResult:
    """LOSS attack (Yeom et al., 2018): the answer's mean NLL."""
    return _attack(*[[(i, s.mean_nll) for i, s in inputs.scores(role)] for role in ("forget", "holdout")])


@register("metric", "mia_zlib")
@reads("scores")
def mia_zlib(inputs: MetricInputs) -> MetricResult:
    """zlib attack (Carlini et al., 2021): mean NLL over the zlib-compressed size of the answer text."""
    sides = []
    for role in ("forget", "holdout"):
        texts = [answer_text(inputs.tokenizer, item["labels"]) for item in iter_items(inputs.data[role])]
        scored = inputs.scores(role)
        sides.append(
            [(i, stats.zlib_score(s.mean_nll, text)) for (i, s), text in zip(scored, texts, strict=True)]
        )
    return _attack(*sides)


@register("metric", "mia_min_k")
@reads("scores")
def mia_min_k(inputs: MetricInputs, k: float = stats.MIN_K_FRACTION) -> MetricResult:
    """Min-k% Prob (Shi et al., 2024): minus the mean of the lowest k fraction of answer-token log-probs."""
    return _attack(
        *[
            [(i, stats.min_k_score(s.token_log_probs[s.answer], k)) for i, s in inputs.scores(role)]
            for role in ("forget", "holdout")
        ]
    )


@register("metric", "mia_min_k_plus_plus")
@reads("scores")
def mia_min_k_plus_plus(inputs: MetricInputs, k: float = stats.MIN_K_FRACTION) -> MetricResult:
    """Min-k%++ (Zhang et al., 2024): min-k over log-probs standardised by the next-token distribution."""
    return _attack(
        *[
            [(i, stats.min_k_plus_plus_score(s.token_zscores[s.answer], k)) for i, s in inputs.scores(role)]
            for role in ("forget", "holdout")
        ]
    )


@register("metric", "mia_gradnorm")
def mia_gradnorm(inputs: MetricInputs, p: float = 2) -> MetricResult:
    """Gradient-norm attack (Wang et al., 2024): mean p-norm of the gradient of the answer's NLL.

    The mean is over parameters, the NLL over the answer tokens with the eos left out unless it is the only
    one: an answer of one token is scored, where the reference framework averages an empty set and fails.
    Runs in eval mode (deterministic), one backward pass per item; leaves no gradient behind."""
    if p not in (1, 2, float("inf")):
        raise UserError(f"p must be 1, 2 or inf, got {p}", key="p")
    model = inputs.model
    if not any(parameter.requires_grad for parameter in model.parameters()):
        raise UserError("mia_gradnorm needs parameters that take gradients; this model has none")

    def gradient_norm(item: dict[str, Any]) -> float:
        return _gradient_norm(model, item, p, inputs.tokenizer.eos_token_id)

    try:
        sides = [inputs.per_item(role, gradient_norm) for role in ("forget", "holdout")]
    finally:
        model.zero_grad(set_to_none=True)
    return _attack(*sides)


def _gradient_norm(model: Any, item: dict[str, Any], p: float, eos_token_id: int | None) -> float:
    import torch

    from unlearn_cli.evals.scoring import _input_device

    device = _input_device(model)
    input_ids = item["input_ids"][None].to(device)
    labels = item["labels"][None].to(device)
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits
        log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        targets = labels[:, 1:]
        positions = (targets[0] != IGNORE_INDEX).nonzero().squeeze(1)
        if len(positions) > 1 and int(targets[0, positions[-1]]) == eos_token_id:
            positions = positions[:-1]
        token_log_probs = log_probs[0, positions].gather(1, targets[0, positions][:, None])
        (-token_log_probs.mean()).backward()
    norms = [
        parameter.grad.detach().float().norm(p=p)
        for parameter in model.parameters()
        if parameter.grad is not None
    ]
    model.zero_grad(set_to_none=True)
    return float(torch.stack(norms).mean())


@register("metric", "mia_reference")
@reads("scores", "reference_model")
def mia_reference(inputs: MetricInputs) -> MetricResult:
    """Reference attack (Carlini et al., 2022): the answer's mean NLL minus a reference model's.

    The reference (`reference_model_path`, e.g. the retain model) is loaded on this model's device."""
    roles = ("forget", "holdout")
    theirs = _reference_scores(inputs, roles)
    return _attack(
        *[
            [
                (i, s.mean_nll - r.mean_nll)
                for (i, s), r in zip(inputs.scores(role), theirs[role], strict=True)
            ]
            for role in roles
        ]
    )


def _reference_scores(inputs: MetricInputs, roles: tuple[str, ...]) -> dict[str, list[SequenceScores]]:
    """The reference model's scores of the datasets in `roles`, in one pass. They never change, so the
    evaluator keeps them: later evaluations (every evaluation point of a training run) neither load the
    reference model again nor score anew."""
    from unlearn_cli.evals.scoring import ScorePool

    datasets = [inputs.data[role] for role in roles]
    dtype = str(getattr(inputs.model, "dtype", None))
    # the evaluator's datasets live as long as its cache: their identities stand for their contents
    key = ("reference_scores", inputs.reference_model_path, dtype, *(id(dataset) for dataset in datasets))
    if key not in inputs.cache:
        pool = ScorePool(
            load_reference_model(inputs),
            eos_token_id=inputs.tokenizer.eos_token_id,
            pad_token_id=inputs.scores_pool.pad_token_id,
            batch_size=inputs.batch_size,
            world=inputs.world,
            reporter=inputs.reporter,
        )
        for dataset in datasets:
            pool.expect(dataset)
        inputs.cache[key] = {
            role: pool.scores(dataset) for role, dataset in zip(roles, datasets, strict=True)
        }
    return inputs.cache[key]


def load_reference_model(inputs: MetricInputs) -> Any:
    """The reference model, in the evaluated model's dtype, on its device (never a CUDA-only device map)."""
    from unlearn_cli.evals.scoring import _input_device
    from unlearn_cli.models.loading import AutoModelForCausalLM

    path = inputs.reference_model_path
    if not path:
        raise UserError(
            "mia_reference needs a reference model",
            key="reference_model_path",
            hint="set reference_model_path to the retain model (a folder or a hub id)",
        )
    dtype = str(getattr(inputs.model, "dtype", "float32")).replace("torch.", "")
    model = AutoModelForCausalLM({"pretrained_model_name_or_path": path, "dtype": dtype})
    return model.to(_input_device(inputs.model)).eval()
