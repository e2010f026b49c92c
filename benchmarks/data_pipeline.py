"""Data-pipeline throughput: cached batched tokenization vs tokenizing each item in `__getitem__`.

Builds 4,000 TOFU-style QA items (`builtin://fictitious-authors?authors=200&facts=20`, split `full`) with a
byte-level BPE tokenizer trained here, in a fresh `datasets` cache, and measures in one run:

* ours: `QADataset` first build (load + batched `datasets.map`), cached rebuild, one pass of `ds[i]`, and one
  epoch through a DataLoader with `DataCollatorForSupervisedDataset` (batch 32);
* naive: a dataset that tokenizes prompt and prompt+answer for every `__getitem__` call (the reference
  framework's approach), measured the same way.

Run: ``python benchmarks/data_pipeline.py`` (``--mode plain|chat|both``, ``--epochs`` for the end-to-end
column). Not a test: numbers depend on the machine; `docs/performance.md` records one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedTokenizerFast

from unlearn_cli.collators import DataCollatorForSupervisedDataset
from unlearn_cli.data import QADataset, TemplateArgs, load_hf_dataset

URI = "builtin://fictitious-authors?authors=200&facts=20"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|>\n{{ m['content'] }}<|end|>\n"
    "{% else %}<|assistant|>\n{{ m['content'] }}<|end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
MODES = {
    "plain": TemplateArgs(user_start_tag="Question: ", user_end_tag="\n", asst_start_tag="Answer: "),
    "chat": TemplateArgs(apply_chat_template=True),
}


def build_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=8000,
        special_tokens=["<|endoftext|>", "<pad>", "<|user|>", "<|assistant|>", "<|end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<pad>"
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


class NaiveQADataset(Dataset):
    """Tokenizes on every access, and finds the answer by the prompt's own token count (the reference way)."""

    def __init__(self, hf_args: dict[str, Any], tokenizer: Any, template_args: TemplateArgs, max_length: int):
        self.data = load_hf_dataset(hf_args)
        self.tokenizer = tokenizer
        self.template_args = template_args
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = self.data[i]
        t, tok = self.template_args, self.tokenizer
        if t.apply_chat_template:
            chat = [{"role": "user", "content": row["question"]}]
            prompt = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            full = tok.apply_chat_template(
                [*chat, {"role": "assistant", "content": row["answer"]}], tokenize=False
            )
            prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
            full_ids = tok(full, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        else:
            prompt = t.user_start_tag + row["question"] + t.user_end_tag + t.asst_start_tag
            prompt_ids = tok(prompt)["input_ids"]
            full_ids = tok(prompt + row["answer"])["input_ids"] + [tok.eos_token_id]
        ids = torch.tensor(full_ids[: self.max_length])
        labels = ids.clone()
        labels[: len(prompt_ids)] = -100
        return {
            "input_ids": ids,
            "labels": labels,
            "attention_mask": torch.ones_like(ids),
            "index": torch.tensor(i),
        }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def iterate(ds: Dataset) -> None:
    for i in range(len(ds)):  # type: ignore[arg-type]
        ds[i]


def loader_epoch(ds: Dataset, collate: Callable[..., Any]) -> None:
    for _ in DataLoader(ds, batch_size=32, shuffle=True, collate_fn=collate):
        pass


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    return statistics.median(timed(fn)[0] for _ in range(repeats))


def run(
    mode: str, tokenizer: Any, hf_args: dict[str, Any], epochs: int, repeats: int
) -> dict[str, dict[str, float]]:
    template_args = MODES[mode]
    collate = DataCollatorForSupervisedDataset(tokenizer)
    build = lambda: QADataset(hf_args, tokenizer=tokenizer, template_args=template_args, max_length=512)  # noqa: E731
    first, ours = timed(build)
    cached = median_time(build, repeats)
    naive_build, naive = timed(lambda: NaiveQADataset(hf_args, tokenizer, template_args, 512))
    assert len(naive) == len(ours)
    for i in (0, len(ours) // 2, len(ours) - 1):
        assert torch.equal(naive[i]["input_ids"], ours[i]["input_ids"]), "pipelines disagree on input ids"
    results = {}
    for name, ds, build_s, rebuild_s in (
        ("ours", ours, first, cached),
        ("naive", naive, naive_build, naive_build),
    ):
        it = median_time(lambda ds=ds: iterate(ds), repeats)
        loader = median_time(lambda ds=ds: loader_epoch(ds, collate), repeats)
        results[name] = {
            "items": len(ds),
            "build": build_s,
            "rebuild": rebuild_s,
            "iterate": it,
            "loader": loader,
            "run_first": build_s + epochs * loader,
            "run_cached": rebuild_s + epochs * loader,
        }
    return results


def report(mode: str, results: dict[str, dict[str, float]], epochs: int) -> None:
    n = results["ours"]["items"]
    columns = [
        ("build", "first build"),
        ("rebuild", "cached rebuild"),
        ("iterate", "ds[i] pass"),
        ("loader", "DataLoader epoch"),
        ("run_first", f"build+{epochs} epochs"),
        ("run_cached", f"rebuild+{epochs} epochs"),
    ]
    print(f"\nmode={mode}: {n} items; items/s (higher is better), ratio = ours / naive")
    print(f"{'pipeline':<10}" + "".join(f"{title:>22}" for _, title in columns))
    for name in ("ours", "naive"):
        rate = [n / results[name][key] for key, _ in columns]
        print(f"{name:<10}" + "".join(f"{r:>22,.0f}" for r in rate))
    ratios = [results["naive"][key] / results["ours"][key] for key, _ in columns]
    print(f"{'ratio':<10}" + "".join(f"{r:>21.2f}x" for r in ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["plain", "chat", "both"], default="both")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("UNLEARN_CLI_CACHE", str(Path(tmp) / "assets"))
        datasets.config.HF_DATASETS_CACHE = Path(tmp) / "hf_datasets"
        hf_args = {"path": URI, "name": "full"}
        raw = load_hf_dataset(hf_args)
        tokenizer = build_tokenizer(
            [q + " " + a for q, a in zip(raw["question"], raw["answer"], strict=True)]
        )
        print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, tokenizer vocab {len(tokenizer)}")
        for mode in ["plain", "chat"] if options.mode == "both" else [options.mode]:
            report(mode, run(mode, tokenizer, hf_args, options.epochs, options.repeats), options.epochs)


if __name__ == "__main__":
    main()
