"""MUSE (Shi et al., 2024): verbatim and knowledge memorisation of news or books, and privacy leakage.

Follows the reference framework's MUSE configuration (names, data configs, generation lengths, ROUGE-L F1):
`forget_verbmem_ROUGE` continues prefixes of forget texts (config `verbmem`), `forget_knowmem_ROUGE` and
`retain_knowmem_ROUGE` answer questions with few-shot examples (config `knowmem`), and membership inference
compares the forget texts with the holdout texts (config `privleak`), whose min-k AUC gives `privleak`.
"""

from __future__ import annotations

from typing import Any, Literal

from unlearn_cli.evals.engine import DataSpec, Evaluator, MetricSpec, check_metric_names, membership_specs
from unlearn_cli.evals.generation import GreedySettings
from unlearn_cli.registry import register

DEFAULT_METRICS = (
    "forget_knowmem_ROUGE",
    "retain_knowmem_ROUGE",
    "forget_verbmem_ROUGE",
    "privleak",
    "extraction_strength",
)
"""The reference framework's default MUSE metrics."""

KNOWMEM_STOPS = ("\n\n", "\nQuestion", "Question:")


def muse_metric_table(knowmem: GreedySettings, verbmem: GreedySettings) -> dict[str, MetricSpec]:
    return {
        "forget_knowmem_ROUGE": MetricSpec(
            "rouge", {"data": "forget_knowmem"}, args={"rouge_type": "rougeL_f1"}, generation=knowmem
        ),
        "retain_knowmem_ROUGE": MetricSpec(
            "rouge", {"data": "retain_knowmem"}, args={"rouge_type": "rougeL_f1"}, generation=knowmem
        ),
        "forget_verbmem_ROUGE": MetricSpec(
            "rouge", {"data": "forget_verbmem_gen"}, args={"rouge_type": "rougeL_f1"}, generation=verbmem
        ),
        **membership_specs(forget="mia_forget", holdout="mia_holdout", memorized="forget_verbmem"),
    }


@register("benchmark", "MUSE")
class MUSE(Evaluator):
    """MUSE: verbatim and knowledge memorisation (ROUGE), privacy leakage, extraction, on News or Books.

    `muse_path` is the Hub id (default ``muse-bench/MUSE-<muse_corpus>``) or a local snapshot folder of it.
    `retain_logs_path` is the retain model's MUSE_EVAL.json: privleak compares with its min-k AUC.
    `tokenizer` and `template_args` are injected (the knowledge questions use the model's template).
    """

    name = "MUSE"

    @staticmethod
    def check_args(args: dict[str, Any]) -> None:
        """Metric names checked at recipe validation, before a tokenizer or data loads."""
        check_metric_names(args, muse_metric_table(GreedySettings(), GreedySettings()), DEFAULT_METRICS)

    def __init__(
        self,
        tokenizer: Any,
        template_args: Any = None,
        muse_corpus: Literal["News", "Books"] = "News",
        muse_path: str | None = None,
        retain_logs_path: str | None = None,
        metrics: list[str] = list(DEFAULT_METRICS),  # noqa: B006 (validated copy, never mutated)
        batch_size: int = 8,
        knowmem_max_new_tokens: int = 32,
        verbmem_max_new_tokens: int = 128,
        max_length: int = 2048,
        reference_model_path: str | None = None,
        custom_metrics: dict[str, dict[str, Any]] = {},  # noqa: B006
    ) -> None:
        table = muse_metric_table(
            GreedySettings.checked(knowmem_max_new_tokens, KNOWMEM_STOPS, key="knowmem_max_new_tokens"),
            GreedySettings.checked(verbmem_max_new_tokens, key="verbmem_max_new_tokens"),
        )
        path = muse_path or f"muse-bench/MUSE-{muse_corpus}"
        self.settings = {"muse_path": path, "muse_corpus": muse_corpus}
        super().__init__(
            tokenizer=tokenizer,
            template_args=template_args,
            data=muse_data(path, max_length),
            metric_table=table,
            metrics=metrics,
            batch_size=batch_size,
            retain_logs_path=retain_logs_path,
            reference_model_path=reference_model_path,
            custom_metrics=custom_metrics,
        )


def muse_data(path: str, max_length: int) -> dict[str, DataSpec]:
    key = "muse_path"

    def knowmem(split: str) -> DataSpec:
        return DataSpec(
            "QADataset",
            {
                "hf_args": {"path": path, "name": "knowmem", "split": f"{split}_qa"},
                "few_shot_dataset_hf_args": {"path": path, "name": "knowmem", "split": f"{split}_qa_icl"},
                "question_key": "question",
                "answer_key": "answer",
                "max_length": 512,
                "predict_with_generate": True,
            },
            key,
        )

    def verbmem(generate: bool) -> DataSpec:
        return DataSpec(
            "CompletionDataset",
            {
                "hf_args": {"path": path, "name": "verbmem", "split": "forget"},
                "prefix_key": "prompt",
                "text_key": "gt",
                "insert_space": True,
                "append_eos": False,
                "max_length": max_length,
                "predict_with_generate": generate,
            },
            key,
        )

    def privleak(split: str) -> DataSpec:
        return DataSpec(
            "CompletionDataset",
            {
                "hf_args": {"path": path, "name": "privleak", "split": split},
                "prefix_key": None,
                "text_key": "text",
                "append_eos": False,
                "max_length": max_length,
            },
            key,
        )

    return {
        "forget_knowmem": knowmem("forget"),
        "retain_knowmem": knowmem("retain"),
        "forget_verbmem": verbmem(False),
        "forget_verbmem_gen": verbmem(True),
        "mia_forget": privleak("forget"),
        "mia_holdout": privleak("holdout"),
    }
