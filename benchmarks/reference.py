"""What the reference model costs NPO: cached reference log-probabilities vs a reference forward every step.

Two ways to run NPO, measured in one run of this script on the same model and data:

* ``cached``: the initial model's summed answer log-probabilities are computed once, before training, and
  travel with the items (the default, ``ref_log_probs = "cached"``); no second model is held;
* ``per_step``: a frozen copy of the model is kept and scores every batch (``ref_log_probs = "per_step"``),
  which is what the reference framework does for NPO and DPO.

Each variant runs in its own subprocess (so peak memory is its own): seconds per optimiser step (median
over the steps after a warm-up) and the process's peak resident memory above what it held once the data
and the model were loaded, plus the bytes of parameters the run holds. The model is the builtin Llama at a
size where the weights show in the memory figures (``--hidden``, ``--layers``).

Run: ``python benchmarks/reference.py`` (``--steps 30 --hidden 512 --layers 8``). Not a test; numbers depend
on the machine, ratios are what to read. `docs/performance.md` records one run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = {"cached": "cached", "per_step": "per_step"}
DATA = "builtin://fictitious-authors?authors=20&facts=10"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(variant: str, steps: int, hidden: int, layers: int, batch: int) -> dict[str, Any]:
    """One variant in this process: returns seconds per step and memory figures."""
    import torch
    from transformers import TrainerCallback

    from unlearn_cli.container import pipeline_for
    from unlearn_cli.recipes import load_recipe

    model_uri = f"builtin://tiny-llama?hidden={hidden}&layers={layers}"
    output_dir = tempfile.mkdtemp(prefix="bench-reference-")
    recipe = load_recipe(
        "quickstart/unlearn",
        [
            f"finetuned_model={model_uri}",
            f'data.forget.authors_forget.args.hf_args.path="{DATA}"',
            f'data.retain.authors_retain.args.hf_args.path="{DATA}"',
            f'trainer.method_args.ref_log_probs="{VARIANTS[variant]}"',
            f"trainer.args.max_steps={steps}",
            f"trainer.args.per_device_train_batch_size={batch}",
            "trainer.args.logging_steps=1000",
            "trainer.args.disable_tqdm=true",
            f"run.output_dir={output_dir}",
        ],
    )
    pipeline = pipeline_for(recipe)
    model = pipeline.model()
    pipeline.split_datasets()
    baseline = _peak_rss_mib()
    started = time.perf_counter()
    trainer = pipeline.trainer()  # cached: computes the reference log-probs here
    setup_seconds = time.perf_counter() - started

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            stamps.append(time.perf_counter())

    trainer.add_callback(Clock())
    trainer.train()
    per_step = [later - earlier for earlier, later in itertools.pairwise(stamps)][3:]
    held = [model] + ([trainer.reference.model] if trainer.reference is not None else [])
    parameter_bytes = sum(p.numel() * p.element_size() for m in held for p in m.parameters())
    return {
        "variant": variant,
        "parameters": sum(p.numel() for p in model.parameters()),
        "setup_s": setup_seconds,
        "s_per_step": statistics.median(per_step),
        "peak_rss_above_loaded_mib": _peak_rss_mib() - baseline,
        "model_parameter_mib": parameter_bytes / 2**20,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # the child process
        print(json.dumps(measure(args.variant, args.steps, args.hidden, args.layers, args.batch)))
        return
    results = {}
    for variant in VARIANTS:
        command = [sys.executable, str(Path(__file__).resolve()), "--variant", variant]
        command += ["--steps", str(args.steps), "--hidden", str(args.hidden), "--layers", str(args.layers)]
        command += ["--batch", str(args.batch)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    cached, per_step = results["cached"], results["per_step"]
    print(
        f"NPO on builtin tiny-llama hidden={args.hidden} layers={args.layers} "
        f"({cached['parameters'] / 1e6:.1f} M parameters), batch {args.batch}, {args.steps} steps"
    )
    header = f"{'variant':<10} {'setup s':>8} {'s/step':>8} {'peak RSS above loaded MiB':>26}"
    print(f"{header} {'params held MiB':>16}")
    for result in results.values():
        print(
            f"{result['variant']:<10} {result['setup_s']:>8.2f} {result['s_per_step']:>8.4f} "
            f"{result['peak_rss_above_loaded_mib']:>26.1f} {result['model_parameter_mib']:>16.1f}"
        )
    print(
        f"per_step / cached: {per_step['s_per_step'] / cached['s_per_step']:.2f}x time per step, "
        f"{per_step['model_parameter_mib'] / cached['model_parameter_mib']:.2f}x parameters held, "
        f"+{per_step['peak_rss_above_loaded_mib'] - cached['peak_rss_above_loaded_mib']:.0f} MiB peak RSS"
    )


if __name__ == "__main__":
    main()
