"""Real multi-process runs: two CPU ranks (gloo) launched by the wrappers, checked against one process.

Each launch costs tens of seconds on a small machine, so there are two: a fine-tune and an NPO unlearning,
both one optimizer step long. The first step's loss and the weights after it must equal those of one
process given the same global batch: this is what checks that the loss denominators (labelled tokens,
sequences) are counted over both ranks. Plain SGD without clipping makes the weights move by exactly
lr × gradient, so a gradient off by any factor would show (Adam's first step would hide it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
AUTHORS = "builtin://fictitious-authors?authors=4&facts=5"  # full: 20 items
FORGET_AUTHORS = "builtin://fictitious-authors?authors=10&facts=4"  # forget10: 4 items, retain90: 36

ONE_SGD_STEP = [
    "trainer.args.max_steps=1",
    'trainer.args.optim="sgd"',
    "trainer.args.learning_rate=1.0",
    "trainer.args.max_grad_norm=0",
    'trainer.args.lr_scheduler_type="constant"',
    "trainer.args.warmup_steps=0",
    "trainer.args.weight_decay=0.0",
    "trainer.args.logging_steps=1",
]

COUNTER_PLUGIN = '''"""Counts the batches each rank tokenizes (a test plugin, imported through `plugins`).

Each batch takes 5 s more, as a large dataset would: a rank that did not wait would tokenize too.
"""
import os
import time

import unlearn_cli.data.base as base

_tokenize = base._without_gc


def _counted(*args, **kwargs):
    with open(os.environ["TOKENIZED_BY"], "a", encoding="utf-8") as log:
        log.write(os.environ.get("RANK", "0") + "\\n")
    time.sleep(5)
    return _tokenize(*args, **kwargs)


base._without_gc = _counted
'''


def _launch(script: str, args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`NUM_PROCESSES=2 scripts/<script> ARGS` with the test's interpreter and a stripped PATH."""
    full_env = {
        **{k: v for k, v in os.environ.items() if k != "PATH"},
        "PATH": "/usr/bin:/bin",  # the wrapper must not depend on an activated environment
        "UNLEARN_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "NUM_PROCESSES": "2",
        "NO_COLOR": "1",
        "COLUMNS": "200",
        **env,
    }
    return subprocess.run(
        ["bash", str(REPO / "scripts" / script), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=900,
        cwd=tmp_path,
    )


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def _assert_one_step_equal(two_ranks: Path, one: Path, start: dict[str, torch.Tensor]) -> None:
    """Same loss, same weights after the step; and the step moved them far more than the tolerance."""
    two_manifest = json.loads((two_ranks / "manifest.json").read_text())
    one_manifest = json.loads((one / "manifest.json").read_text())
    assert two_manifest["global_steps"] == one_manifest["global_steps"] == 1
    assert two_manifest["final_loss"] == pytest.approx(one_manifest["final_loss"], rel=1e-5)
    two_weights, one_weights = _weights(two_ranks), _weights(one)
    assert two_weights.keys() == one_weights.keys()
    moved = max(float((one_weights[k] - start[k]).abs().max()) for k in one_weights)
    assert moved > 1e-3
    for name in one_weights:
        torch.testing.assert_close(two_weights[name], one_weights[name], rtol=1e-4, atol=1e-6, msg=name)


def _assert_saved_once(output_dir: Path, proc: subprocess.CompletedProcess[str], finished: str) -> None:
    from transformers import AutoModelForCausalLM

    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count(finished) == 1  # rank 0 alone reports and writes the manifest
    assert sorted(p.name for p in output_dir.glob("*.safetensors")) == ["model.safetensors"]
    assert not list(output_dir.parent.glob(f"{output_dir.name}.previous"))
    AutoModelForCausalLM.from_pretrained(output_dir)  # the saved model loads
    launch = json.loads((output_dir / "manifest.json").read_text())["launch"]
    assert (launch["world_size"], launch["num_nodes"], launch["launcher"]) == (2, 1, "accelerate launch")
    assert launch["distributed_type"] == "MULTI_CPU"


@pytest.mark.slow
def test_two_ranks_fine_tune_like_one_process_and_tokenize_once(tmp_path: Path) -> None:
    from unlearn_cli.builtin import resolve_builtin
    from unlearn_cli.pipelines.run import run_training

    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "tokenize_counter.py").write_text(COUNTER_PLUGIN)
    common = [f'data.train.authors_full.args.hf_args.path="{AUTHORS}"', *ONE_SGD_STEP]
    tokenized_by = tmp_path / "tokenized_by.txt"
    started = time.perf_counter()
    proc = _launch(
        "finetune.sh",
        [
            "quickstart/finetune",
            *common,
            "trainer.args.per_device_train_batch_size=10",  # 2 ranks × 10 = all 20 items in the step
            'plugins=["tokenize_counter"]',
            f"run.output_dir={tmp_path / 'two'}",
        ],
        tmp_path,
        PYTHONPATH=os.pathsep.join([str(tmp_path / "plugins"), str(REPO), os.environ.get("PYTHONPATH", "")]),
        TOKENIZED_BY=str(tokenized_by),
        # fresh caches: the tiny model is built, and the data tokenized, during this launch
        UNLEARN_CLI_CACHE=str(tmp_path / "cache"),
        HF_DATASETS_CACHE=str(tmp_path / "datasets"),
    )
    print(f"two-rank fine-tune: {time.perf_counter() - started:.0f} s")
    _assert_saved_once(tmp_path / "two", proc, "Training finished")
    assert tokenized_by.read_text().split() == ["0"]  # one tokenization, by rank 0; rank 1 read the cache

    run_training(
        "quickstart/finetune",
        [*common, "trainer.args.per_device_train_batch_size=20", f"run.output_dir={tmp_path / 'one'}"],
        overwrite=False,
    )
    start = _weights(resolve_builtin("builtin://tiny-llama"))
    _assert_one_step_equal(tmp_path / "two", tmp_path / "one", start)


@pytest.mark.slow
def test_two_ranks_unlearn_with_npo_like_one_process(tmp_path: Path) -> None:
    """NPO's first-step loss reads the cached reference log-probs, which the ranks computed half each."""
    from unlearn_cli.builtin import resolve_builtin
    from unlearn_cli.pipelines.run import run_unlearning

    common = [
        "finetuned_model=builtin://tiny-llama",
        f'data.forget.authors_forget.args.hf_args.path="{FORGET_AUTHORS}"',
        f'data.retain.authors_retain.args.hf_args.path="{FORGET_AUTHORS}"',
        *ONE_SGD_STEP,
    ]
    proc = _launch(
        "unlearn.sh",
        [
            "quickstart/unlearn",
            *common,
            "trainer.args.per_device_train_batch_size=2",  # 2 ranks × 2 = the 4 forget items
            f"run.output_dir={tmp_path / 'two'}",
        ],
        tmp_path,
    )
    _assert_saved_once(tmp_path / "two", proc, "Unlearning (NPO) finished")
    manifest = run_unlearning(
        "quickstart/unlearn",
        [*common, "trainer.args.per_device_train_batch_size=4", f"run.output_dir={tmp_path / 'one'}"],
        overwrite=False,
    )
    assert manifest["final_forget_loss"] == pytest.approx(2 / 0.1 * 0.6931472, rel=1e-4)  # π = π_ref
    two: dict[str, Any] = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert two["final_forget_loss"] == pytest.approx(manifest["final_forget_loss"], rel=1e-5)
    assert two["final_retain_loss"] == pytest.approx(manifest["final_retain_loss"], rel=1e-5)
    start = _weights(resolve_builtin("builtin://tiny-llama"))
    _assert_one_step_equal(tmp_path / "two", tmp_path / "one", start)
