"""Through the real command line (in this process): how runs stop and what they leave.

Divergence, early stop, a signal during setup or a second signal, out of memory, a missing package, and
the folder states a user meets after each: nothing of theirs touched, a failed run never blocks the rerun.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

SMALL = "builtin://fictitious-authors?authors=4&facts=5"
TRAIN = [
    "quickstart/finetune",
    f'data.train.authors_full.args.hf_args.path="{SMALL}"',
    "trainer.args.per_device_train_batch_size=4",
    "trainer.args.num_train_epochs=2",  # 10 steps
    "run.measure_answer_nll=false",
    "trainer.args.logging_steps=1",
    "trainer.args.disable_tqdm=true",
]
UNLEARN = [
    "quickstart/unlearn",
    "finetuned_model=builtin://tiny-llama",  # mechanics only: no fine-tune needed
    f'data.forget.authors_forget.args.hf_args.path="{SMALL}"',
    f'data.retain.authors_retain.args.hf_args.path="{SMALL}"',
    "trainer.handler=GradDiff",
    "trainer.args.per_device_train_batch_size=1",
    "trainer.args.num_train_epochs=2",
    "run.measure_answer_nll=false",
    "trainer.args.logging_steps=1",
    "trainer.args.disable_tqdm=true",
]
SAVE_EVERY_STEP = ['trainer.args.save_strategy="steps"', "trainer.args.save_steps=1"]
Runner = Callable[..., Any]

EXPLODING_PLUGIN = '''
from unlearn_cli.registry import register
from unlearn_cli.trainers.grad_diff import GradDiff


@register("trainer", "ExplodingGradDiff")
class ExplodingGradDiff(GradDiff):
    """GradDiff whose forget term becomes infinite at its third step (to test the divergence guard)."""

    def loss_terms(self, model, inputs, counts):
        terms = super().loss_terms(model, inputs, counts)
        if self.state.global_step >= 2:
            terms["forget"] = terms["forget"] * float("inf")
        return terms
'''


def marker(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())


def message(result: Any, code: int) -> str:
    assert result.code == code, result
    assert "Traceback" not in result.stderr
    return result.stderr


def test_a_non_finite_forget_term_stops_the_run_naming_the_step_and_the_term(
    run_unlearn: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "exploding_plugin.py").write_text(EXPLODING_PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = tmp_path / "run"
    result = run_unlearn(
        "unlearn",
        *UNLEARN,
        'plugins=["exploding_plugin"]',
        "trainer.handler=ExplodingGradDiff",
        *SAVE_EVERY_STEP,
        f"run.output_dir={folder}",
    )
    err = message(result, 1)
    assert (
        "error: training diverged at step 3: the forget loss term became non-finite (forget_loss = -inf"
        in err
    )
    assert f"the last good checkpoint is checkpoint-2 in {folder}" in err
    assert sorted(p.name for p in folder.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    state = marker(folder)
    assert state["status"] == "failed" and state["diverged"]["bad_terms"] == ["forget"]
    from safetensors.torch import load_file

    saved = load_file(folder / "checkpoint-2" / "model.safetensors")
    assert all(torch.isfinite(tensor).all() for tensor in saved.values())


def test_the_retain_loss_limit_stops_unlearning_early_and_keeps_the_model(
    run_unlearn: Runner, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    result = run_unlearn(
        "unlearn", *UNLEARN, "run.stop_when_retain_loss_above=1.0", f"run.output_dir={folder}"
    )
    assert result.code == 0, result.stderr
    state = marker(folder)
    assert state["status"] == "finished"
    assert state["stopped_early"]["step"] == 1 and state["stopped_early"]["retain_loss"] > 1.0
    assert state["global_steps"] == 1 and (folder / "model.safetensors").is_file()
    assert "stopped early at step 1: retain loss" in result.stdout


def test_a_signal_during_setup_stops_at_once_and_writes_nothing(
    run_unlearn: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    original = transformers.AutoModelForCausalLM.from_pretrained

    def interrupted_load(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", interrupted_load)
    folder = tmp_path / "run"
    err = message(run_unlearn("train", *TRAIN, f"run.output_dir={folder}"), 130)
    assert "stopped at once: nothing was written" in err
    assert not folder.exists()


def test_a_second_signal_stops_at_once_keeping_the_last_checkpoint(
    run_unlearn: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unlearn_cli.trainers.finetune import FinetuneTrainer

    original = FinetuneTrainer.training_step

    def impatient(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.state.global_step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # asks for a stop after this step...
            os.kill(os.getpid(), signal.SIGTERM)  # ...and insists
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FinetuneTrainer, "training_step", impatient)
    folder = tmp_path / "run"
    err = message(run_unlearn("train", *TRAIN, *SAVE_EVERY_STEP, f"run.output_dir={folder}"), 143)
    assert "stopped at once: kept" in err and "checkpoint-3" in err
    assert "--resume" in err.splitlines()[-1]
    assert marker(folder)["status"] == "interrupted"


def test_out_of_memory_is_reported_with_memory_advice_and_the_rerun_is_not_blocked(
    run_unlearn: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unlearn_cli.trainers.finetune import FinetuneTrainer

    original = FinetuneTrainer.training_step

    def out_of_memory(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(FinetuneTrainer, "training_step", out_of_memory)
    folder = tmp_path / "run"
    err = message(run_unlearn("train", *TRAIN, f"run.output_dir={folder}"), 1)
    assert "key 'trainer.args.per_device_train_batch_size': out of GPU memory while training" in err
    assert "gradient_accumulation_steps" in err and "gradient_checkpointing=true" in err
    assert marker(folder)["status"] == "failed"

    monkeypatch.setattr(FinetuneTrainer, "training_step", original)
    rerun = run_unlearn("train", *TRAIN, f"run.output_dir={folder}")  # no --overwrite needed
    assert rerun.code == 0, rerun.stderr
    assert marker(folder)["status"] == "finished"


def test_a_missing_optional_package_is_named_with_the_key_that_needs_it(
    run_unlearn: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unlearn_cli.trainers.finetune import FinetuneTrainer

    def no_bitsandbytes(self: Any) -> Any:
        raise ModuleNotFoundError("No module named 'bitsandbytes'", name="bitsandbytes")

    monkeypatch.setattr(FinetuneTrainer, "create_optimizer", no_bitsandbytes)
    err = message(
        run_unlearn(
            "train", *TRAIN, 'trainer.args.optim="adamw_bnb_8bit"', f"run.output_dir={tmp_path / 'r'}"
        ),
        2,
    )
    assert (
        "command-line override: key 'trainer.args.optim': this run needs the Python package 'bitsandbytes'"
        in err
    )
    assert "hint: pip install bitsandbytes, or change trainer.args.optim" in err


def test_an_unexpected_error_keeps_its_traceback_and_is_not_blamed_on_the_recipe(
    run_unlearn: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unlearn_cli.trainers.finetune import FinetuneTrainer

    def broken(self: Any) -> Any:
        raise RuntimeError("a bug somewhere")

    monkeypatch.setattr(FinetuneTrainer, "create_optimizer", broken)
    with pytest.raises(RuntimeError, match="a bug somewhere"):
        run_unlearn("train", *TRAIN, f"run.output_dir={tmp_path / 'r'}")
    assert marker(tmp_path / "r")["error"] == "RuntimeError: a bug somewhere"


def test_overwrite_never_deletes_a_users_folder(run_unlearn: Runner, tmp_path: Path) -> None:
    """The folder of the issue: the user's own recipe.toml, notes and data, given as the output folder."""
    mine = tmp_path / "project"
    mine.mkdir()
    files = {
        "recipe.toml": "[run]\n",
        "notes.txt": "ideas",
        "data.jsonl": '{"question": "q", "answer": "a"}\n',
    }
    for name, text in files.items():
        (mine / name).write_text(text)
    for extra in ([], ["--overwrite"]):
        err = message(run_unlearn("train", *TRAIN, f"run.output_dir={mine}", *extra), 2)
        assert "unlearn-cli" in err
    assert {p.name: p.read_text() for p in mine.iterdir()} == files
    assert not (tmp_path / "project.previous").exists()


def test_overwrite_keeps_the_finished_run_when_the_new_one_is_stopped_during_setup(
    run_unlearn: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "run"
    assert run_unlearn("train", *TRAIN, f"run.output_dir={folder}").code == 0
    before = (folder / "model.safetensors").read_bytes()

    import transformers

    original = transformers.AutoModelForCausalLM.from_pretrained

    def interrupted_load(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", interrupted_load)
    message(run_unlearn("train", *TRAIN, f"run.output_dir={folder}", "--overwrite"), 143)
    assert (folder / "model.safetensors").read_bytes() == before
    assert marker(folder)["status"] == "finished" and not (tmp_path / "run.previous").exists()


def test_dry_run_describes_what_the_run_would_do(run_unlearn: Runner, tmp_path: Path) -> None:
    folder = tmp_path / "run"
    result = run_unlearn("train", *TRAIN, f"run.output_dir={folder}", "--dry-run")
    assert result.code == 0, result.stderr
    assert f"would train into a new folder {folder}" in result.stdout
    assert not folder.exists()
    err = message(run_unlearn("train", *TRAIN, f"run.output_dir={folder}", "--dry-run", "--resume"), 2)
    assert "key '--resume': there is no run to resume" in err


def test_resume_refuses_a_recipe_that_trains_differently(
    run_unlearn: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also when the difference is a value from the environment, which the saved recipe only names."""
    from unlearn_cli.recipes import load_recipe
    from unlearn_cli.recipes.saving import environment_digests, saved_recipe_text
    from unlearn_cli.run_folder import RunInterrupted, run_folder

    monkeypatch.setenv("UNLEARN_TEST_EPOCHS", "2")
    folder = tmp_path / "run"
    args = [*TRAIN, "trainer.args.num_train_epochs=${env:UNLEARN_TEST_EPOCHS}", f"run.output_dir={folder}"]
    recipe = load_recipe(args[0], args[1:])
    record = {"environment_digests": environment_digests(recipe)}
    with pytest.raises(RunInterrupted), run_folder(folder, command="train", record=record) as run:
        run.write_text("recipe.toml", saved_recipe_text(recipe, output_dir=folder))
        (folder / "checkpoint-3").mkdir()
        (folder / "checkpoint-3" / "trainer_state.json").write_text("{}")
        raise RunInterrupted(signal.SIGINT, "stopped by SIGINT at step 3", graceful=True)

    def resume(*extra: str) -> Any:
        return run_unlearn("train", *args, *extra, "--resume", "--dry-run")

    assert resume().code == 0
    assert resume("trainer.args.logging_steps=5").code == 0  # what is logged, not what is trained
    err = message(resume("trainer.args.learning_rate=0.5"), 2)
    assert "key '--resume': the recipe differs" in err, err
    assert "trainer.args.learning_rate: 0.005 → 0.5" in err, err
    monkeypatch.setenv("UNLEARN_TEST_EPOCHS", "7")
    err = message(resume(), 2)
    assert "trainer.args.num_train_epochs: its value from the environment changed" in err
    assert "7" not in err.replace(str(tmp_path), "")  # the value itself is never shown
