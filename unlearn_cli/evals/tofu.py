"""TOFU (Maini et al., 2024): how much a model still knows about the fictitious authors it should forget,
and how much it keeps of the rest, of real authors and of world facts.

The data layout, metric names and definitions follow the reference framework's TOFU configuration, so a
result here and one there mean the same thing and its published retain-model logs serve as
`retain_logs_path`. The forget and retain metrics read TOFU's `<forget split>_perturbed` and
`retain_perturbed` configs (question, answer, paraphrased answer, perturbed answers), membership inference
compares the forget split with `holdoutNN` (authors the model never saw), model utility also reads
`real_authors_perturbed` and `world_facts_perturbed`.
"""

from __future__ import annotations

from typing import Any, Literal

from unlearn_cli.evals.engine import DataSpec, Evaluator, MetricSpec, check_metric_names, membership_specs
from unlearn_cli.evals.generation import GreedySettings
from unlearn_cli.registry import register

DEFAULT_METRICS = (
    "forget_truth_ratio",
    "forget_quality",
    "forget_Q_A_Prob",
    "forget_Q_A_ROUGE",
    "model_utility",
    "privleak",
    "extraction_strength",
)
"""The benchmark's standard seven (the reference framework's default TOFU metrics)."""

MODEL_UTILITY_PARTS = (
    "retain_Q_A_Prob",
    "retain_Q_A_ROUGE",
    "retain_Truth_Ratio",
    "ra_Q_A_Prob_normalised",
    "ra_Q_A_ROUGE",
    "ra_Truth_Ratio",
    "wf_Q_A_Prob_normalised",
    "wf_Q_A_ROUGE",
    "wf_Truth_Ratio",
)


def tofu_metric_table(generation: GreedySettings) -> dict[str, MetricSpec]:
    """Every TOFU metric by its reference-framework name."""
    table: dict[str, MetricSpec] = {}
    for part in ("forget", "retain", "ra", "wf"):
        table[f"{part}_Q_A_Prob"] = MetricSpec("probability", {"data": part})
        table[f"{part}_Q_A_PERT_Prob"] = MetricSpec("probability", {"data": f"{part}_pert"})
        table[f"{part}_Q_A_ROUGE"] = MetricSpec(
            "rouge", {"data": f"{part}_gen"}, args={"rouge_type": "rougeL_recall"}, generation=generation
        )
    for part in ("forget", "retain"):
        table[f"{part}_Q_A_PARA_Prob"] = MetricSpec("probability", {"data": f"{part}_para"})
    for part in ("forget",):
        for variant in ("PARA", "PERT"):
            table[f"{part}_Q_A_{variant}_ROUGE"] = MetricSpec(
                "rouge",
                {"data": f"{part}_{variant.lower()}_gen"},
                args={"rouge_type": "rougeL_recall"},
                generation=generation,
            )
    table["forget_truth_ratio"] = MetricSpec(
        "truth_ratio",
        needs={"correct": "forget_Q_A_PARA_Prob", "wrong": "forget_Q_A_PERT_Prob"},
        args={"aggregator": "closer_to_1_better"},
    )
    table["retain_Truth_Ratio"] = MetricSpec(
        "truth_ratio",
        needs={"correct": "retain_Q_A_PARA_Prob", "wrong": "retain_Q_A_PERT_Prob"},
        args={"aggregator": "true_better"},
    )
    for part in ("ra", "wf"):
        table[f"{part}_Truth_Ratio"] = MetricSpec(
            "truth_ratio",
            needs={"correct": f"{part}_Q_A_Prob", "wrong": f"{part}_Q_A_PERT_Prob"},
            args={"aggregator": "true_better"},
        )
        table[f"{part}_Q_A_Prob_normalised"] = MetricSpec(
            "probability_w_options", needs={"correct": f"{part}_Q_A_Prob", "wrong": f"{part}_Q_A_PERT_Prob"}
        )
    table["forget_quality"] = MetricSpec(
        "ks_test", needs={"forget": "forget_truth_ratio"}, reference_logs={"retain": "forget_truth_ratio"}
    )
    table["model_utility"] = MetricSpec("hm_aggregate", needs={name: name for name in MODEL_UTILITY_PARTS})
    table.update(membership_specs(forget="forget", holdout="holdout", memorized="forget"))
    return table


@register("benchmark", "TOFU")
class TOFU(Evaluator):
    """TOFU: forget quality, model utility, truth ratios, ROUGE, membership inference on author QA.

    `tofu_path` is the Hub id or a local snapshot folder of the dataset (`load_dataset(folder, name=...)`),
    or `builtin://fictitious-authors`. `holdout_split = "auto"` takes the forget split's (forget05 →
    holdout05). `metrics` lists result names (the standard seven by default; `unlearn registry show TOFU`
    and docs/evaluation.md list them all). `retain_logs_path` is the retain model's TOFU_EVAL.json (ours or
    the reference framework's): forget quality and privleak compare with it. `tokenizer` and
    `template_args` are injected.
    """

    name = "TOFU"

    @staticmethod
    def check_args(args: dict[str, Any]) -> None:
        """Metric names checked at recipe validation, before a tokenizer or data loads."""
        check_metric_names(args, tofu_metric_table(GreedySettings()), DEFAULT_METRICS)

    def __init__(
        self,
        tokenizer: Any,
        template_args: Any = None,
        tofu_path: str = "locuslab/TOFU",
        forget_split: Literal["forget01", "forget05", "forget10"] = "forget10",
        holdout_split: str = "auto",
        retain_logs_path: str | None = None,
        metrics: list[str] = list(DEFAULT_METRICS),  # noqa: B006 (validated copy, never mutated)
        question_key: str = "question",
        batch_size: int = 32,
        max_new_tokens: int = 200,
        max_length: int = 512,
        reference_model_path: str | None = None,
        custom_metrics: dict[str, dict[str, Any]] = {},  # noqa: B006
    ) -> None:
        holdout = forget_split.replace("forget", "holdout") if holdout_split == "auto" else holdout_split
        self.settings = {
            "tofu_path": tofu_path,
            "forget_split": forget_split,
            "holdout_split": holdout,
            "question_key": question_key,
        }
        super().__init__(
            tokenizer=tokenizer,
            template_args=template_args,
            data=tofu_data(tofu_path, forget_split, holdout, question_key, max_length),
            metric_table=tofu_metric_table(GreedySettings.checked(max_new_tokens)),
            metrics=metrics,
            batch_size=batch_size,
            retain_logs_path=retain_logs_path,
            reference_model_path=reference_model_path,
            custom_metrics=custom_metrics,
        )


def tofu_data(
    tofu_path: str, forget_split: str, holdout_split: str, question_key: str, max_length: int
) -> dict[str, DataSpec]:
    """The TOFU datasets by name: per part (forget, retain, ra, wf) the true answers, their paraphrases and
    perturbations, and prompts for generation; the holdout answers for membership inference."""

    def qa(config: str, answer_key: str, question: str, generate: bool = False) -> DataSpec:
        key = "holdout_split" if config == holdout_split else "tofu_path"
        return DataSpec(
            "QADataset",
            {
                "hf_args": {"path": tofu_path, "name": config, "split": "train"},
                "question_key": question,
                "answer_key": answer_key,
                "max_length": max_length,
                "predict_with_generate": generate,
            },
            key=key,
        )

    configs = {
        "forget": (f"{forget_split}_perturbed", question_key),
        "retain": ("retain_perturbed", question_key),
        "ra": ("real_authors_perturbed", "question"),
        "wf": ("world_facts_perturbed", "question"),
    }
    data: dict[str, DataSpec] = {}
    for part, (config, question) in configs.items():
        data[part] = qa(config, "answer", question)
        data[f"{part}_para"] = qa(config, "paraphrased_answer", question)
        data[f"{part}_pert"] = qa(config, "perturbed_answer", question)
        data[f"{part}_gen"] = qa(config, "answer", question, generate=True)
    data["forget_para_gen"] = qa(configs["forget"][0], "paraphrased_answer", question_key, generate=True)
    data["forget_pert_gen"] = qa(configs["forget"][0], "perturbed_answer", question_key, generate=True)
    data["holdout"] = qa(holdout_split, "answer", "question")
    return data
