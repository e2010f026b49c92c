"""Each registered metric on constructed inputs: a bigram "model" with known probabilities, or given results.

The bigram model's next-token distribution depends only on the current token, so every probability below
is read off its table by hand.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from unlearn_cli.errors import UserError
from unlearn_cli.evals import metrics
from unlearn_cli.evals.distributed import World
from unlearn_cli.evals.engine import MetricInputs, MetricSpec, read_logs, resolve_order
from unlearn_cli.evals.generation import GenerationPool, rouge_scores
from unlearn_cli.evals.report import Reporter
from unlearn_cli.evals.scoring import ScorePool

EOS = 3
# next-token probabilities after each token (rows: current token 0..3)
TABLE = torch.tensor(
    [
        [0.25, 0.25, 0.25, 0.25],
        [0.1, 0.2, 0.5, 0.2],
        [0.25, 0.25, 0.25, 0.25],
        [0.7, 0.1, 0.1, 0.1],
    ],
    dtype=torch.float64,
)


class Bigram(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Any:
        return SimpleNamespace(logits=TABLE.log()[input_ids].float())


class Letters:
    """Token i is the letter "abcd"[i]; token 3 is the eos, dropped with skip_special_tokens."""

    eos_token_id = EOS
    pad_token_id = 0

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        return "".join("abcd"[int(i)] for i in ids if not (skip_special_tokens and int(i) == EOS))


def item(ids: list[int], answer_from: int, index: int) -> dict[str, torch.Tensor]:
    input_ids = torch.tensor(ids)
    labels = input_ids.clone()
    labels[:answer_from] = -100
    return {"input_ids": input_ids, "labels": labels, "index": torch.tensor(index)}


# A: answer tokens 2 (after 1: p = 1/2, the argmax) and eos (after 2: p = 1/4, argmax is 0)
A = item([0, 1, 2, EOS], 2, 0)
# B: answer tokens 1 (after 1: p = 1/5, not the argmax) and eos (after 1: p = 1/5)
B = item([0, 1, 1, EOS], 2, 1)
NLL_A = 1.5 * math.log(2.0)  # mean of ln 2 and ln 4
NLL_B = math.log(5.0)


class Recorder(Reporter):
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, text: str) -> None:
        self.warnings.append(text)


def inputs(
    data: dict[str, Any] | None = None,
    results: dict[str, Any] | None = None,
    reference_logs: dict[str, Any] | None = None,
    reporter: Reporter | None = None,
) -> MetricInputs:
    model = Bigram()
    reporter = reporter or Reporter()
    return MetricInputs(
        name="test_metric",
        model=model,
        tokenizer=Letters(),
        data=data or {},
        results=results or {},
        reference_logs=reference_logs or {},
        generation=None,
        batch_size=2,
        world=World(),
        reporter=reporter,
        scores_pool=ScorePool(model, eos_token_id=EOS, pad_token_id=0, batch_size=2),
        generation_pool=GenerationPool(model, Letters(), batch_size=2),
    )


def test_scores_are_read_off_the_logits() -> None:
    pool = ScorePool(Bigram(), eos_token_id=EOS, pad_token_id=0, batch_size=8)
    a, b = pool.scores([A, B])
    assert a.token_log_probs.tolist() == pytest.approx([math.log(0.5), math.log(0.25)])
    assert a.mean_nll == pytest.approx(NLL_A)
    assert a.greedy_hits.tolist() == [True, False]
    assert a.ends_with_eos and a.answer == slice(0, 1)  # per-token statistics leave the eos out
    assert b.mean_nll == pytest.approx(NLL_B)
    assert b.greedy_hits.tolist() == [False, False]


def test_identical_sequences_are_forwarded_once_across_datasets() -> None:
    pool = ScorePool(Bigram(), eos_token_id=EOS, pad_token_id=0, batch_size=8)
    first, second = [A, B], [B, A, A]
    pool.expect(first)
    pool.expect(second)
    pool.scores(first)
    assert pool.forward_passes == 2
    assert [s.mean_nll for s in pool.scores(second)] == pytest.approx([NLL_B, NLL_A, NLL_A])
    assert pool.forward_passes == 2


def test_probability_per_item_and_averaged_over_options() -> None:
    result = metrics.probability(inputs({"data": [A, B]}))
    assert result["value_by_index"]["0"] == pytest.approx({"prob": 2**-1.5, "avg_loss": NLL_A})
    assert result["value_by_index"]["1"] == pytest.approx({"prob": 0.2, "avg_loss": NLL_B})
    assert result["agg_value"] == pytest.approx((2**-1.5 + 0.2) / 2)
    options = metrics.probability(inputs({"data": [A, item([0, 1, 1, EOS], 2, 0)]}))
    assert options["value_by_index"]["0"]["prob"] == pytest.approx([2**-1.5, 0.2])
    assert options["agg_value"] == pytest.approx((2**-1.5 + 0.2) / 2)


def test_exact_memorization_and_extraction_strength_leave_the_eos_out() -> None:
    em = metrics.exact_memorization(inputs({"data": [A, B]}))
    es = metrics.extraction_strength(inputs({"data": [A, B]}))
    assert em["value_by_index"] == {"0": {"score": 1.0}, "1": {"score": 0.0}}
    assert es["value_by_index"] == {"0": {"score": 1.0}, "1": {"score": 0.0}}
    assert em["agg_value"] == es["agg_value"] == pytest.approx(0.5)


def _results(values: dict[str, Any], key: str) -> dict[str, Any]:
    return {"value_by_index": {index: {key: value} for index, value in values.items()}}


def test_truth_ratio_both_aggregations() -> None:
    correct = _results({"0": 1.0, "1": 2.0}, "avg_loss")
    wrong = _results({"0": [2.0, 4.0], "1": [2.0, 2.0]}, "avg_loss")
    # R0 = exp(1 - 3) = e^-2, R1 = exp(2 - 2) = 1
    forget = metrics.truth_ratio(inputs(results={"correct": correct, "wrong": wrong}), "closer_to_1_better")
    assert [v["score"] for v in forget["value_by_index"].values()] == pytest.approx([math.exp(-2), 1.0])
    assert forget["agg_value"] == pytest.approx((math.exp(-2) + 1.0) / 2)
    keep = metrics.truth_ratio(inputs(results={"correct": correct, "wrong": wrong}), "true_better")
    assert keep["agg_value"] == pytest.approx((1 - math.exp(-2) + 0.0) / 2)


def test_probability_with_options_normalises_over_the_wrong_answers() -> None:
    result = metrics.probability_w_options(
        inputs(
            results={
                "correct": _results({"0": 0.6, "1": 0.2}, "prob"),
                "wrong": _results({"0": [0.1, 0.2, 0.1], "1": [0.2, 0.2, 0.2]}, "prob"),
            }
        )
    )
    assert [v["prob"] for v in result["value_by_index"].values()] == pytest.approx([0.6, 0.25])
    assert result["agg_value"] == pytest.approx(0.425)


def test_forget_quality_is_scipys_ks_p_value_and_null_without_retain_logs() -> None:
    from scipy.stats import ks_2samp

    ours = _results({"0": 0.1, "1": 0.5, "2": 0.9, "3": 0.95}, "score")
    theirs = _results({"0": 0.2, "1": 0.3}, "score")
    recorder = Recorder()
    result = metrics.ks_test(
        inputs(results={"forget": ours}, reference_logs={"retain": theirs}, reporter=recorder)
    )
    assert result == {"agg_value": ks_2samp([0.1, 0.5, 0.9, 0.95], [0.2, 0.3]).pvalue}
    assert "computed on the same forget split" in recorder.warnings[0]  # 4 ratios against 2
    alone = Recorder()
    assert metrics.ks_test(inputs(results={"forget": ours}, reporter=alone)) == {"agg_value": None}
    assert "forget quality is null" in alone.warnings[0]


def test_model_utility_is_zero_with_a_zero_component_and_null_with_a_missing_one() -> None:
    parts = {"a": {"agg_value": 0.5}, "b": {"agg_value": 0.0}, "c": {"agg_value": 1.0}}
    assert metrics.hm_aggregate(inputs(results=parts)) == {"agg_value": 0.0}
    full = {"a": {"agg_value": 1.0}, "b": {"agg_value": 2.0}, "c": {"agg_value": 4.0}}
    assert metrics.hm_aggregate(inputs(results=full))["agg_value"] == pytest.approx(3 / 1.75)
    assert metrics.hm_aggregate(inputs(results={"a": {"agg_value": None}}, reporter=Recorder())) == {
        "agg_value": None
    }


def test_privleak_against_the_retain_auc_or_a_half() -> None:
    forget = {"forget": {"agg_value": 0.8}}
    with_logs = metrics.privleak(inputs(results=forget, reference_logs={"retain": {"agg_value": 0.6}}))
    assert with_logs["agg_value"] == pytest.approx(-50.0)
    recorder = Recorder()
    without = metrics.privleak(inputs(results=forget, reporter=recorder), ref_value=0.5)
    assert without["agg_value"] == pytest.approx(-60.0)  # ((1-0.8) - 0.5) / 0.5 * 100
    assert "retain AUC of 0.5" in recorder.warnings[0]
    undefined = metrics.privleak(
        inputs(results=forget, reference_logs={"retain": {"agg_value": 1.0}}, reporter=Recorder())
    )
    assert undefined == {"agg_value": None}


@pytest.mark.parametrize("attack", ["mia_loss", "mia_min_k", "mia_min_k_plus_plus", "mia_zlib"])
def test_membership_attacks_separate_a_likely_forget_set_from_an_unlikely_holdout(attack: str) -> None:
    result = getattr(metrics, attack)(inputs({"forget": [A], "holdout": [B]}))
    assert result["agg_value"] == result["auc"] == pytest.approx(1.0)
    assert set(result) == {"agg_value", "auc", "forget", "holdout"}
    assert set(result["forget"]["value_by_index"]) == {"0"}
    reverse = getattr(metrics, attack)(inputs({"forget": [B], "holdout": [A]}))
    assert reverse["agg_value"] == pytest.approx(0.0)


def test_membership_scores_are_the_attacks_statistics() -> None:
    loss = metrics.mia_loss(inputs({"forget": [A], "holdout": [B]}))
    assert loss["forget"]["value_by_index"]["0"]["score"] == pytest.approx(NLL_A)
    min_k = metrics.mia_min_k(inputs({"forget": [A], "holdout": [B]}))
    # one answer token once the eos is left out: -log p of it
    assert min_k["forget"]["value_by_index"]["0"]["score"] == pytest.approx(math.log(2.0))
    assert min_k["holdout"]["value_by_index"]["1"]["score"] == pytest.approx(math.log(5.0))
    zlib = metrics.mia_zlib(inputs({"forget": [A], "holdout": [B]}))
    # the answer texts "c" and "b" compress to 9 bytes
    assert zlib["forget"]["value_by_index"]["0"]["score"] == pytest.approx(NLL_A / 9)


def test_rouge_equals_rouge_score_with_stemming() -> None:
    from rouge_score import rouge_scorer

    truth, generated = "The cat sat on the mat", "the cats sat"
    scores = rouge_scores(truth, generated)
    # stemmed tokens: the cat sat on the mat / the cat sat -> 3 of 6 reference words, LCS 3
    assert scores == pytest.approx({"rouge1_recall": 0.5, "rougeL_recall": 0.5, "rougeL_f1": 2 / 3})
    reference = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True).score(truth, generated)
    assert scores["rougeL_recall"] == reference["rougeL"].recall
    assert scores["rougeL_f1"] == reference["rougeL"].fmeasure


def test_dependencies_come_first_and_once() -> None:
    table = {
        "p": MetricSpec("probability"),
        "q": MetricSpec("probability"),
        "tr": MetricSpec("truth_ratio", needs={"correct": "p", "wrong": "q"}),
        "fq": MetricSpec("ks_test", needs={"forget": "tr"}),
        "mu": MetricSpec("hm_aggregate", needs={"a": "p", "b": "tr"}),
    }
    assert resolve_order(["fq", "mu", "p"], table) == ["p", "q", "tr", "fq", "mu"]


def test_unknown_and_circular_metrics_are_user_errors() -> None:
    table = {"forget_Q_A_Prob": MetricSpec("probability"), "x": MetricSpec("ks_test", needs={"forget": "y"})}
    table["y"] = MetricSpec("ks_test", needs={"forget": "x"})
    with pytest.raises(UserError, match="unknown metric 'forget_Q_A_Prb'") as caught:
        resolve_order(["forget_Q_A_Prb"], table)
    assert "forget_Q_A_Prob" in (caught.value.hint or "")
    with pytest.raises(UserError, match="in a circle: x -> y -> x"):
        resolve_order(["x"], table)


def test_a_reference_framework_eval_file_reads_as_logs(tmp_path: Any) -> None:
    layout = {
        "forget_truth_ratio": {
            "agg_value": 0.6,
            "value_by_index": {"0": {"score": 0.5}, "1": {"score": 0.7}},
        },
        "mia_min_k": {
            "agg_value": 0.45,
            "auc": 0.45,
            "forget": {"agg_value": 2.0, "value_by_index": {"0": {"score": 2.0}}},
            "holdout": {"agg_value": 2.1, "value_by_index": {"0": {"score": 2.1}}},
        },
    }
    path = tmp_path / "TOFU_EVAL.json"
    path.write_text(json.dumps(layout, indent=4))
    logs = read_logs(path)
    ours = _results({"0": 0.4, "1": 0.8}, "score")
    from scipy.stats import ks_2samp

    quality = metrics.ks_test(
        inputs(results={"forget": ours}, reference_logs={"retain": logs["forget_truth_ratio"]})
    )
    assert quality["agg_value"] == ks_2samp([0.4, 0.8], [0.5, 0.7]).pvalue
    leak = metrics.privleak(
        inputs(results={"forget": {"agg_value": 0.8}}, reference_logs={"retain": logs["mia_min_k"]})
    )
    assert leak["agg_value"] == pytest.approx((0.2 - 0.55) / 0.55 * 100)
