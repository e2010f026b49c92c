"""The full TOFU suite on a tiny model: our evaluator against the reference framework's way of evaluating.

Builds TOFU-shaped data (`builtin://fictitious-authors?authors=300&facts=10`: forget10 and retain_perturbed
300 items each, holdout10 300, real authors 100, world facts 117), a ~4 M-parameter tiny Llama
(`builtin://tiny-llama?hidden=256&layers=3`) briefly fine-tuned on those answers so that it answers and
stops (fine-tuning is not timed), then measures, in one process and on the same tokenized datasets:

* ours: `TOFU.evaluate` with the standard seven metrics: one forward pass per distinct answer, shared by
  every metric, in length-sorted batches; one greedy generation per distinct prompt, length-sorted, with a
  KV cache, finished answers leaving the batch;
* reference: what the reference framework does for the same seven metrics: each metric forwards its own
  dataset in DataLoader order (probability, paraphrase, perturbations, extraction strength and min-k each
  again), and each ROUGE metric calls `model.generate` on its batches in dataset order;

and checks both give the same aggregates. Run: ``python benchmarks/evaluation.py`` (``--threads 1`` on a
busy machine, ``--finetune-epochs 0`` for a random model, whose answers all run to 200 tokens). Not a
test: numbers depend on the machine; `docs/performance.md` records runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from unlearn_cli.collators import DataCollatorForSupervisedDataset
from unlearn_cli.evals import stats
from unlearn_cli.evals.generation import _hf_generate, cut_at_stop, eos_token_ids, rouge_scores
from unlearn_cli.evals.report import Reporter
from unlearn_cli.evals.scoring import _token_statistics
from unlearn_cli.evals.tofu import DEFAULT_METRICS, TOFU

FINETUNE_RECIPE = """
extends = ["quickstart/target"]
[run]
name = "bench-finetune"
[model.model_args]
pretrained_model_name_or_path = "{model}"
[model.tokenizer_args]
pretrained_model_name_or_path = "{model}"
[data.train.authors_full.args.hf_args]
path = "{data}"
name = "forget10"
[data.train.retain]
handler = "QADataset"
args = {{ hf_args = {{ path = "{data}", name = "retain_perturbed", split = "train" }}, max_length = 128 }}
[trainer.args]
num_train_epochs = {epochs}
per_device_train_batch_size = 32
learning_rate = 3e-3
logging_steps = 1000
"""


def finetune(model_uri: str, data_uri: str, epochs: int, folder: Path) -> str:
    from unlearn_cli.pipelines.run import run_training

    if epochs == 0:
        return model_uri
    recipe = folder / "finetune.toml"
    recipe.write_text(FINETUNE_RECIPE.format(model=model_uri, data=data_uri, epochs=epochs))
    started = time.perf_counter()
    run_training(str(recipe), [f"run.output_dir={folder / 'model'}"], overwrite=False)
    print(f"(fine-tuned in {time.perf_counter() - started:.0f} s, not timed below)")
    return str(folder / "model")


# --- the reference framework's procedure -------------------------------------------------------------------


def per_metric_scores(model: Any, dataset: Any, collator: Any, batch_size: int, eos: int) -> dict[str, list]:
    """One metric's own forward passes over its dataset, in DataLoader order (the reference framework's)."""
    out: dict[str, list] = {}
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collator)
    with torch.no_grad():
        for batch in loader:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            targets = batch["labels"][:, 1:]
            mask = targets != -100
            log_probs, _, hits = _token_statistics(logits[:, :-1][mask], targets[mask])
            start = 0
            for row, count in enumerate(mask.sum(1).tolist()):
                lp, hit = log_probs[start : start + count], hits[start : start + count]
                start += count
                answer = (
                    slice(0, count - 1)
                    if targets[row][mask[row]][-1] == eos and count > 1
                    else slice(0, count)
                )
                out.setdefault(str(int(batch["index"][row])), []).append(
                    (float(-lp.mean()), lp[answer], hit[answer])
                )
    return out


def per_metric_rouge(model: Any, tokenizer: Any, dataset: Any, collator: Any, batch_size: int) -> float:
    """One ROUGE metric: `model.generate` on its batches in dataset order, ROUGE-L recall."""
    scores = []
    eos = eos_token_ids(model, tokenizer)
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collator):
            tokens = _hf_generate(
                model, batch["input_ids"], batch["attention_mask"], 200, eos, collator.pad_token_id, None
            )
            for generated, labels in zip(tokens, batch["labels"], strict=True):
                truth = tokenizer.decode(labels[labels != -100], skip_special_tokens=True).strip()
                text = cut_at_stop(tokenizer.decode(generated, skip_special_tokens=True), ())
                scores.append(rouge_scores(truth, text)["rougeL_recall"])
    return float(np.mean(scores))


def reference_suite(model: Any, tokenizer: Any, tofu: TOFU, batch_size: int) -> dict[str, Any]:
    """The seven standard metrics, each computing its own inputs."""
    right = DataCollatorForSupervisedDataset(tokenizer)
    left = DataCollatorForSupervisedDataset(tokenizer, padding_side="left")
    eos = tokenizer.eos_token_id

    def scores(name: str) -> dict[str, list]:
        return per_metric_scores(model, tofu.dataset(name), right, batch_size, eos)

    def probability(name: str) -> float:
        return float(np.mean([np.mean([np.exp(-nll) for nll, _, _ in v]) for v in scores(name).values()]))

    def ratios(correct: str, wrong: str) -> list[float]:
        right_, wrong_ = scores(correct), scores(wrong)
        return [
            stats.truth_ratio(np.mean([n for n, _, _ in right_[i]]), [np.mean([n for n, _, _ in wrong_[i]])])
            for i in right_
        ]

    def normalised(part: str) -> float:
        true, wrong = scores(part), scores(f"{part}_pert")
        return float(
            np.mean(
                [
                    stats.normalised_probability(np.exp(-true[i][0][0]), [np.exp(-n) for n, _, _ in wrong[i]])
                    for i in true
                ]
            )
        )

    def rouge(name: str) -> float:
        return per_metric_rouge(model, tokenizer, tofu.dataset(name), left, batch_size)

    forget_ratios = ratios("forget_para", "forget_pert")
    utility = [
        probability("retain"),
        rouge("retain_gen"),
        stats.truth_ratio_true_better(ratios("retain_para", "retain_pert")),
        normalised("ra"),
        rouge("ra_gen"),
        stats.truth_ratio_true_better(ratios("ra", "ra_pert")),
        normalised("wf"),
        rouge("wf_gen"),
        stats.truth_ratio_true_better(ratios("wf", "wf_pert")),
    ]
    min_k = [
        [stats.min_k_score(lp, 0.4) for v in scores(side).values() for _, lp, _ in v]
        for side in ("forget", "holdout")
    ]
    return {
        "forget_truth_ratio": stats.truth_ratio_closer_to_one(forget_ratios),
        "forget_quality": None,
        "forget_Q_A_Prob": probability("forget"),
        "forget_Q_A_ROUGE": rouge("forget_gen"),
        "model_utility": stats.harmonic_mean(utility),
        "privleak": stats.privleak(stats.mia_auc(*min_k), 0.5),
        "extraction_strength": float(
            np.mean([stats.extraction_strength(hit) for v in scores("forget").values() for _, _, hit in v])
        ),
    }


class PassTimes(Reporter):
    """Times of our shared passes (scoring, generation)."""

    def __init__(self) -> None:
        self.times: dict[str, tuple[int, float]] = {}

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        started = time.perf_counter()
        yield lambda _done: None
        self.times[description] = (total, time.perf_counter() - started)

    def warning(self, text: str) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--model", default=None, help="an already fine-tuned model folder (skips fine-tuning)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from unlearn_cli.builtin import resolve_builtin
    from unlearn_cli.data.template import TemplateArgs

    folder = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    os.environ.setdefault("UNLEARN_CLI_CACHE", str(folder / "cache"))
    os.environ.setdefault("HF_DATASETS_CACHE", str(folder / "datasets"))
    data_uri = f"builtin://fictitious-authors?authors={args.authors}&facts=10"
    model_uri = f"builtin://tiny-llama?hidden={args.hidden}&layers={args.layers}"
    path = args.model or finetune(model_uri, data_uri, args.finetune_epochs, folder)
    local = resolve_builtin(path) if path.startswith("builtin://") else path
    model = AutoModelForCausalLM.from_pretrained(local).eval()
    tokenizer = AutoTokenizer.from_pretrained(local)
    template = TemplateArgs(apply_chat_template=True, system_prompt="You are a helpful assistant.")
    tofu = TOFU(
        tokenizer, template, tofu_path=data_uri, metrics=list(DEFAULT_METRICS), batch_size=args.batch_size
    )
    for name in tofu.data_specs:  # tokenized once, before either timing (both read the same datasets)
        tofu.dataset(name)
    sizes = {part: len(tofu.dataset(part)) for part in ("forget", "retain", "holdout", "ra", "wf")}
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: {parameters / 1e6:.2f} M parameters; items: {sizes}; threads: {torch.get_num_threads()}")

    started = time.perf_counter()
    reference = reference_suite(model, tokenizer, tofu, args.batch_size)
    reference_seconds = time.perf_counter() - started
    passes = PassTimes()
    started = time.perf_counter()
    ours = tofu.evaluate(model, reporter=passes)
    ours_seconds = time.perf_counter() - started

    print(f"{'metric':<22}{'ours':>12}{'reference':>12}")
    for name in DEFAULT_METRICS:
        a, b = ours.summary[name], reference[name]
        print(f"{name:<22}{'null' if a is None else f'{a:.4f}':>12}{'null' if b is None else f'{b:.4f}':>12}")
    print(f"{'seconds':<22}{ours_seconds:>12.1f}{reference_seconds:>12.1f}")
    print(f"speed-up: {reference_seconds / ours_seconds:.1f}x")
    for description, (units, seconds) in passes.times.items():
        print(f"ours, {description}: {units} in {seconds:.1f} s")


if __name__ == "__main__":
    main()
