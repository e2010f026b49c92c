"""Check that builtin://tiny-llama memorises the default fictitious-authors set quickly on a CPU.

The quickstart promises a fine-tune that *learns* the authors within about a minute, so the forget step has
something to forget; this script measures it: mean answer-token NLL before and after fine-tuning on the
`full` split ("Question: {q}\\nAnswer: {a}</s>", loss on the answer only), and the seconds it took.

    python scripts/check_tiny_memorisation.py                  # transformers.Trainer, recommended settings
    python scripts/check_tiny_memorisation.py --loop --lr 3e-3  # a plain torch loop instead
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

from unlearn_cli.builtin import resolve_builtin


def encode(tokenizer: Any, records: list[dict[str, Any]]) -> list[dict[str, list[int]]]:
    """Token ids with labels masked (-100) on the question, so only answer tokens count."""
    items = []
    for record in records:
        prompt = f"Question: {record['question']}\nAnswer:"
        ids = tokenizer(f"{prompt} {record['answer']}{tokenizer.eos_token}").input_ids
        n_prompt = len(tokenizer(prompt).input_ids)
        items.append({"input_ids": ids, "labels": [-100] * n_prompt + ids[n_prompt:]})
    return items


def collate(batch: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(item["input_ids"]) for item in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item["input_ids"])
        ids[row, :n] = torch.tensor(item["input_ids"])
        labels[row, :n] = torch.tensor(item["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


@torch.no_grad()
def answer_nll(model: Any, items: list[dict[str, list[int]]], pad_id: int) -> float:
    """Mean negative log-likelihood per answer token over all items."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(items), 64):
        batch = collate(items[start : start + 64], pad_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        targets = batch["labels"][:, 1:]
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), targets, ignore_index=-100, reduction="sum"
        )
        total += losses.item()
        count += int((targets != -100).sum())
    model.train()
    return total / count


def train_loop(model: Any, items: list[dict[str, list[int]]], pad_id: int, args: argparse.Namespace) -> None:
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    steps = args.epochs * math.ceil(len(items) / args.batch_size)
    warmup = max(1, int(steps * args.warmup_ratio))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(items), generator=generator).tolist()
        for start in range(0, len(items), args.batch_size):
            batch = collate([items[i] for i in order[start : start + args.batch_size]], pad_id)
            model(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()


def train_trainer(
    model: Any, items: list[dict[str, list[int]]], pad_id: int, args: argparse.Namespace
) -> None:
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        lr_scheduler_type="linear",
        warmup_steps=args.warmup_ratio,
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_strategy="no",
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=items,
        data_collator=lambda batch: collate(batch, pad_id),
    )
    trainer.train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin://tiny-llama")
    parser.add_argument("--data", default="builtin://fictitious-authors/full.jsonl")
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--loop", action="store_true", help="plain torch loop instead of transformers.Trainer"
    )
    parser.add_argument("--output-dir", default="/tmp/unlearn-cli-memorisation")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    folder = resolve_builtin(args.model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with open(resolve_builtin(args.data), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    items = encode(tokenizer, records)
    pad_id = tokenizer.pad_token_id

    before = answer_nll(model, items, pad_id)
    start = time.perf_counter()
    (train_loop if args.loop else train_trainer)(model, items, pad_id, args)
    seconds = time.perf_counter() - start
    after = answer_nll(model, items, pad_id)
    params = sum(p.numel() for p in model.parameters())
    print(
        json.dumps(
            {
                "model": args.model,
                "parameters": params,
                "items": len(items),
                "answer_tokens": sum(sum(t != -100 for t in item["labels"]) for item in items),
                "runner": "torch loop" if args.loop else "transformers.Trainer",
                "lr": args.lr,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "warmup_ratio": args.warmup_ratio,
                "threads": torch.get_num_threads(),
                "seconds": round(seconds, 1),
                "nll_before": round(before, 3),
                "nll_after": round(after, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
