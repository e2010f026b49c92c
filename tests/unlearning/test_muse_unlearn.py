"""The MUSE recipes end to end: `unlearn unlearn muse_unlearn/GradDiff` through the real CLI on the tiny
model, with the recipe's forget/retain sections pointed at small local JSONL corpora (the hub data is not
reachable here), so the recipe's shape (PretrainingDataset blocks, knobs, trainer settings) runs as
packaged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from unlearn_cli.recipes import load_recipe

FORGET = [
    "The harbour town of Velmora closed its old lighthouse after the storm of the wet spring.",
    "Council members of Velmora voted to rebuild the pier with stone from the northern quarry.",
    "Fishermen in Velmora reported record catches of silver eel in the late autumn months.",
]
RETAIN = [
    "The mountain village of Orrin holds a cheese market every first Sunday of the month.",
    "Teachers in Orrin started a reading club for children during the long winter evenings.",
    "A new bridge over the river Tarn now links Orrin with the valley road to the south.",
]


def _corpus(path: Path, texts: list[str]) -> str:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return str(path)


def test_muse_recipes_share_the_published_settings() -> None:
    recipe = load_recipe("muse_unlearn/NPO", ['muse_corpus="Books"'])
    assert recipe.trainer is not None and recipe.model is not None
    args = recipe.trainer.args
    assert args["learning_rate"] == 1e-5 and args["num_train_epochs"] == 10
    assert args["lr_scheduler_type"] == "constant"
    assert args["per_device_train_batch_size"] * args["gradient_accumulation_steps"] == 32
    forget = recipe.data["forget"]["MUSE_forget"]
    assert forget.component.name == "PretrainingDataset"
    assert forget.args["hf_args"] == {"path": "muse-bench/MUSE-Books", "name": "raw", "split": "forget"}
    assert recipe.data["retain"]["MUSE_retain"].args["hf_args"]["split"] == "retain1"
    model_args = recipe.model.args["model_args"]
    assert model_args.pretrained_model_name_or_path == "muse-bench/MUSE-Books_target"


@pytest.mark.slow
def test_muse_graddiff_runs_offline_through_the_cli(run_unlearn: Callable[..., Any], tmp_path: Path) -> None:
    forget = _corpus(tmp_path / "forget.jsonl", FORGET)
    retain = _corpus(tmp_path / "retain.jsonl", RETAIN)
    output = tmp_path / "run"
    result = run_unlearn(
        "unlearn",
        "muse_unlearn/GradDiff",
        "finetuned_model=builtin://tiny-llama",
        "model.model_args.dtype=float32",
        "~model.model_args.attn_implementation",
        f'data.forget.MUSE_forget.args.hf_args={{path="json", data_files="{forget}", split="train"}}',
        f'data.retain.MUSE_retain.args.hf_args={{path="json", data_files="{retain}", split="train"}}',
        "data.forget.MUSE_forget.args.max_length=16",
        "data.retain.MUSE_retain.args.max_length=16",
        "trainer.args.bf16=false",
        "trainer.args.num_train_epochs=2",
        "trainer.args.per_device_train_batch_size=2",
        "trainer.args.gradient_accumulation_steps=1",
        "trainer.args.learning_rate=1e-3",
        f"run.output_dir={output}",
    )
    assert result.code == 0, result.stderr
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["trainer"] == "GradDiff" and manifest["run_name"] == "muse_News_GradDiff"
    assert manifest["method_args"] == {"gamma": 1.0, "alpha": 1.0, "retain_loss_type": "NLL"}
    assert manifest["forget_items"] >= len(FORGET) and manifest["retain_items"] >= len(RETAIN)
    assert manifest["forget_nll_after"] > manifest["forget_nll_before"]  # ascent on the forget blocks
    assert (output / "loss_log.jsonl").is_file()
