"""Memory (and speed) of the memory savers, measured on the tiny model in one run.

Each configuration runs in a fresh process through the real container (`pipeline_for(recipe).trainer()`
then `train()`), so its peak is its own:

* fine-tuning the whole model, with an 8-bit optimizer (when bitsandbytes is installed), with LoRA, and with
  LoRA plus gradient checkpointing;
* NPO with a frozen reference copy (`ref_log_probs = "per_step"`), with cached reference log-probs (the
  default), and with LoRA, whose reference is the same model with its adapter disabled.

Per run it prints the bytes held for weights, gradients (one per trainable weight), optimizer states and
the reference (a copy's weights, or the cached log-probs), counted from the live tensors, and the peak of
all tensor memory: on CUDA `torch.cuda.max_memory_allocated()` over building the trainer and training
(weights included); on the CPU the highest total of live CPU tensors that the torch profiler's memory
timeline records over building the trainer and three training steps (a second, profiled pass: the
profiler slows training). Tokens per second (unprofiled) counts every non-padding token the training
steps read, both parts of a forget/retain pair.

Run: ``python benchmarks/memory.py`` (``--device cuda --precision bf16 --attn sdpa`` on a GPU; ``--only
NAME`` for some runs; ``--epochs``). Not a test: `docs/distributed.md` records one run.

``--arithmetic`` prints instead the per-GPU memory of real models' weights, gradients, optimizer states and
reference under each setup (parameters × bytes, from the models' published shapes), without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

FORGET_DATA = "builtin://fictitious-authors"  # 20 authors × 10 facts: forget10 = 20 items, retain90 = 180
ALL_LINEAR = '["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]'
LORA = f'model.peft={{peft_type="LORA", r=8, lora_alpha=16, target_modules={ALL_LINEAR}}}'
CHECKPOINTING = "trainer.args.activation_checkpointing=true"
NPO = ["finetuned_model=builtin://tiny-llama"]

PROFILED_STEPS = 3
RUNS: dict[str, tuple[str, list[str]]] = {
    "fine-tune, full model": ("quickstart/finetune", []),
    "fine-tune, full model, 8-bit AdamW": ("quickstart/finetune", ['trainer.args.optim="adamw_bnb_8bit"']),
    "fine-tune, LoRA": ("quickstart/finetune", [LORA]),
    "fine-tune, LoRA + checkpointing": ("quickstart/finetune", [LORA, CHECKPOINTING]),
    "NPO, reference copy": ("quickstart/unlearn", [*NPO, 'trainer.method_args.ref_log_probs="per_step"']),
    "NPO, cached log-probs": ("quickstart/unlearn", NPO),
    "NPO, LoRA, disabled adapter": (
        "quickstart/unlearn",
        [*NPO, LORA, 'trainer.method_args.ref_log_probs="per_step"'],
    ),
}


def _bytes(tensors: Any) -> int:
    seen: set[int] = set()
    total = 0
    for tensor in tensors:
        if tensor is not None and tensor.data_ptr() not in seen:  # tied weights count once
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


def _tokens(dataset: Any) -> int:
    from unlearn_cli.trainers.base import batch_parts

    total = 0
    for index in range(len(dataset)):
        item = dataset[index]
        parts = [part for _, part in batch_parts(item)] or [item]
        total += sum(len(part["input_ids"]) for part in parts)
    return total


def _settings(recipe: str, overrides: list[str], precision: str, attn: str, epochs: int) -> list[str]:
    settings = [
        *overrides,
        f"trainer.args.num_train_epochs={epochs}",
        "trainer.args.per_device_train_batch_size=16",
        "trainer.args.logging_steps=1000",
        f'model.model_args.attn_implementation="{attn}"',
        f"run.output_dir={tempfile.mkdtemp(prefix='unlearn-memory-')}",
    ]
    if recipe == "quickstart/unlearn":
        settings += [
            f'data.forget.authors_forget.args.hf_args.path="{FORGET_DATA}"',
            f'data.retain.authors_retain.args.hf_args.path="{FORGET_DATA}"',
        ]
    if precision == "bf16":
        settings += ["trainer.args.bf16=true", 'model.model_args.dtype="bfloat16"']
    return settings


def _cpu_peak(recipe: str, settings: list[str]) -> int:
    """Peak bytes of live CPU tensors over building the trainer and PROFILED_STEPS steps (torch profiler)."""
    import json

    from torch.profiler import ProfilerActivity, profile

    from unlearn_cli.container import pipeline_for
    from unlearn_cli.recipes import load_recipe

    pipeline = pipeline_for(load_recipe(recipe, [*settings, f"trainer.args.max_steps={PROFILED_STEPS}"]))
    pipeline.split_datasets()
    with profile(
        activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
    ) as prof:
        pipeline.trainer().train()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "timeline.json")
        prof.export_memory_timeline(path, device="cpu")
        with open(path, encoding="utf-8") as file:
            _, sizes = json.load(file)
    return max(sum(at_time) for at_time in sizes)


def child(name: str, device: str, precision: str, attn: str, epochs: int) -> dict[str, Any]:
    import torch

    from unlearn_cli.container import pipeline_for
    from unlearn_cli.recipes import load_recipe
    from unlearn_cli.trainers.reference import AdapterDisabledReference

    recipe, overrides = RUNS[name]
    settings = _settings(recipe, overrides, precision, attn, epochs)
    cuda = device == "cuda"
    pipeline = pipeline_for(load_recipe(recipe, settings))
    pipeline.split_datasets()  # tokenizer and data first: the peak is the model's and training's
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer = pipeline.trainer()
    tokens = _tokens(trainer.train_dataset) * epochs
    started = time.perf_counter()
    trainer.train()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    model = trainer.model
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    states = [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
    reference = getattr(trainer, "reference", None)
    if reference is not None and not isinstance(reference, AdapterDisabledReference):
        reference_bytes = _bytes([*reference.model.parameters(), *reference.model.buffers()])
    else:
        cached = [t for by_path in pipeline.reference_log_probs().values() for t in by_path.values()]
        reference_bytes = _bytes(cached)
    return {
        "run": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in trainable),
        "weights": _bytes(model.parameters()),
        "gradients": _bytes(trainable),
        "optimizer": _bytes(states),
        "reference": reference_bytes,
        "peak": torch.cuda.max_memory_allocated() if cuda else _cpu_peak(recipe, settings),
        "peak_kind": "torch.cuda.max_memory_allocated" if cuda else f"CPU tensors, {PROFILED_STEPS} steps",
        "tokens_per_second": tokens / seconds,
        "device": torch.cuda.get_device_name() if cuda else "CPU",
    }


# Published shapes: vocabulary, hidden, MLP, layers, heads, key/value heads, head size, tied embeddings.
SHAPES = {
    "Llama-3.2-1B": (128256, 2048, 8192, 16, 32, 8, 64, True),
    "Llama-3.2-3B": (128256, 3072, 8192, 28, 24, 8, 128, True),
    "Llama-3.1-8B": (128256, 4096, 14336, 32, 32, 8, 128, False),
}
LORA_RANK = 16


def _counts(shape: tuple[int, ...]) -> tuple[int, int]:
    """(all parameters, LoRA parameters with rank LORA_RANK on every linear layer of every block)."""
    vocab, hidden, mlp, layers, heads, kv_heads, head, tied = shape
    linear = [
        (hidden, heads * head),  # q
        (hidden, kv_heads * head),  # k
        (hidden, kv_heads * head),  # v
        (heads * head, hidden),  # o
        (hidden, mlp),  # gate
        (hidden, mlp),  # up
        (mlp, hidden),  # down
    ]
    block = sum(a * b for a, b in linear) + 2 * hidden
    total = vocab * hidden * (1 if tied else 2) + layers * block + hidden
    lora = layers * sum(LORA_RANK * (a + b) for a, b in linear)
    return total, lora


def arithmetic() -> None:
    """Per-GPU GiB for weights + gradients + optimizer states (+ reference), activations not included."""
    gib = 2**30
    print(
        f"GiB per GPU, activations not included; LoRA rank {LORA_RANK} on every linear layer of every block\n"
    )
    print(
        "| model | parameters | full, AdamW | + reference copy | 8-bit AdamW | ZeRO-3 ×8 + reference |",
        end="",
    )
    print(" LoRA | LoRA adapter parameters |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, shape in SHAPES.items():
        total, lora = _counts(shape)
        full = total * (2 + 2 + 4)  # bf16 weights and gradients, AdamW's two moments in bf16
        eight_bit = total * (2 + 2 + 2)  # two one-byte moments
        zero3 = total * (16 + 2) / 8  # DeepSpeed: bf16 weights and gradients, fp32 master and moments; copy
        adapter = total * 2 + lora * 16  # frozen bf16 base; fp32 adapter, its gradients and moments
        print(
            f"| {name} | {total / 1e9:.2f} B | {full / gib:.1f} | {(full + 2 * total) / gib:.1f} | "
            f"{eight_bit / gib:.1f} | {zero3 / gib:.1f} | {adapter / gib:.1f} | {lora / 1e6:.1f} M |"
        )


def _size(value: int) -> str:
    if value < 2**10:
        return f"{value} B"
    if value < 2**20:
        return f"{value / 2**10:,.1f} KiB"
    return f"{value / 2**20:,.2f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="run names (default: all)")
    parser.add_argument("--arithmetic", action="store_true", help="print the real-model arithmetic only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arithmetic:
        arithmetic()
        return
    if args.child:
        print(json.dumps(child(args.child, args.device, args.precision, args.attn, args.epochs)))
        return
    try:
        import bitsandbytes  # noqa: F401

        has_bnb = True
    except ImportError:
        has_bnb = False
    rows = []
    for name in args.only or list(RUNS):
        if "8-bit" in name and not has_bnb:
            print(f"skipped: {name} (bitsandbytes is not installed)", file=sys.stderr)
            continue
        env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": ""} if args.device == "cpu" else {})}
        command = [sys.executable, __file__, "--child", name, "--device", args.device]
        command += ["--precision", args.precision, "--attn", args.attn, "--epochs", str(args.epochs)]
        proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            print(f"failed: {name}\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"done: {name}", file=sys.stderr)
    if not rows:
        return
    first = rows[0]
    print(f"\n{first['device']}, {args.precision}, attention {args.attn}; peak = {first['peak_kind']}\n")
    print(
        "| run | trainable / all parameters | weights | gradients | optimizer states | reference | peak |",
        end="",
    )
    print(" tokens/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['run']} | {row['trainable']:,} / {row['parameters']:,} | {_size(row['weights'])} | "
            f"{_size(row['gradients'])} | {_size(row['optimizer'])} | {_size(row['reference'])} | "
            f"{_size(row['peak'])} | {row['tokens_per_second']:,.0f} |"
        )


if __name__ == "__main__":
    main()
