"""A real run, stopped by a real signal after a few steps and resumed with the command it printed, ends with
exactly the weights of a run that was never interrupted: model, optimizer, scheduler, RNG and data order
(including the forget/retain pairing of unlearning) all come back from the checkpoint."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SMALL = "builtin://fictitious-authors?authors=4&facts=5"
QUIET = ["trainer.args.logging_steps=1", "trainer.args.disable_tqdm=true"]
TRAIN = [
    "quickstart/finetune",
    f'data.train.authors_full.args.hf_args.path="{SMALL}"',
    "trainer.args.per_device_train_batch_size=4",
    "trainer.args.num_train_epochs=6",  # 5 steps per epoch, 30 in all
    "run.measure_answer_nll=false",
    *QUIET,
]


def unlearn_args(finetuned: Path) -> list[str]:
    return [
        "quickstart/unlearn",
        f"finetuned_model={finetuned}",
        f'data.forget.authors_forget.args.hf_args.path="{SMALL}"',  # 5 forget items
        f'data.retain.authors_retain.args.hf_args.path="{SMALL}"',  # 15 retain items, paired anew each epoch
        "trainer.args.per_device_train_batch_size=1",
        "trainer.args.num_train_epochs=6",  # 30 steps
        "run.measure_answer_nll=false",
        *QUIET,
    ]


def cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "UNLEARN_DEBUG")}
    env.update(NO_COLOR="1", COLUMNS="250")
    return subprocess.Popen(
        [sys.executable, "-m", "unlearn_cli.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_after_steps(proc: subprocess.Popen[str], log: Path, steps: int, signum: int) -> tuple[int, str]:
    """Send `signum` once the run has logged `steps` optimizer steps; its exit code and stderr."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if log.is_file() and len(log.read_text().splitlines()) >= steps:
            proc.send_signal(signum)
            break
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended before it was signalled: {proc.returncode}\n{out}\n{err}")
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the run logged no steps in time")
    _, err = proc.communicate(timeout=240)
    return proc.returncode, err


def resume_with_the_printed_command(err: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    lines = err.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("resume with"))
    command = shlex.split(lines[index + 1])
    assert command[0] == "unlearn" and command[-1] == "--resume"
    proc = cli(*command[1:], cwd=cwd)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def logged_steps(folder: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (folder / "loss_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_train_stopped_by_sigterm_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    from unlearn_cli.pipelines.run import run_training

    reference = tmp_path / "reference"
    run_training(TRAIN[0], [*TRAIN[1:], f"run.output_dir={reference}"])

    folder = tmp_path / "stopped"
    proc = cli("train", *TRAIN, f"run.output_dir={folder}", cwd=tmp_path)
    code, err = stop_after_steps(proc, folder / "loss_log.jsonl", 3, signal.SIGTERM)
    assert code == 143, err
    assert "SIGTERM received: stopping after the current step" in err
    assert "Traceback" not in err
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    step = manifest["global_step"]
    assert 3 <= step < 30
    assert f"interrupted by SIGTERM at step {step} of 30: kept {folder / f'checkpoint-{step}'}" in err
    assert not (folder / "model.safetensors").exists()  # no final model until the run finishes

    from unlearn_cli.errors import UserError

    with pytest.raises(UserError, match="holds an interrupted `unlearn train` run") as refused:
        run_training(TRAIN[0], [*TRAIN[1:], f"run.output_dir={folder}"])  # without --resume
    assert "--resume" in (refused.value.hint or "")

    resumed = resume_with_the_printed_command(err, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(reference, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["global_steps"] == 30
    assert manifest["resumed_from"] == f"checkpoint-{step}"
    assert logged_steps(folder) == list(range(1, 31))  # one log, no step twice
    assert not (folder / f"checkpoint-{step}").exists()  # made for the interruption; save_strategy is "no"


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from unlearn_cli.pipelines.run import run_training

    folder = tmp_path_factory.mktemp("finetune") / "model"
    run_training(TRAIN[0], [*TRAIN[1:], "trainer.args.num_train_epochs=4", f"run.output_dir={folder}"])
    return folder


@pytest.mark.slow
def test_unlearning_stopped_by_sigint_resumes_to_the_uninterrupted_weights(
    tmp_path: Path, finetuned: Path
) -> None:
    """NPO with cached reference log-probabilities: the resumed run must compute them from the initial
    model, and pair each forget item with the same retain item as the uninterrupted run, epoch by epoch."""
    from unlearn_cli.pipelines.run import run_unlearning

    args = unlearn_args(finetuned)
    reference = tmp_path / "reference"
    run_unlearning(args[0], [*args[1:], f"run.output_dir={reference}"])

    folder = tmp_path / "stopped"
    proc = cli("unlearn", *args, f"run.output_dir={folder}", cwd=tmp_path)
    code, err = stop_after_steps(proc, folder / "loss_log.jsonl", 7, signal.SIGINT)
    assert code == 130, err
    assert "interrupted by SIGINT at step" in err and "Traceback" not in err
    step = json.loads((folder / "manifest.json").read_text())["global_step"]
    assert 7 <= step < 30
    evaluations = [{"step": 0, "when": "start"}, {"step": step, "when": "step"}, {"step": step + 2}]
    (folder / "eval_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evaluations) + '{"st')

    resumed = resume_with_the_printed_command(err, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(reference, folder)
    assert logged_steps(folder) == list(range(1, 31))
    kept = [json.loads(line) for line in (folder / "eval_log.jsonl").read_text().splitlines()]
    assert kept == evaluations[:2]  # what came after the checkpoint (and a line cut short) is dropped
    reference_log = (reference / "loss_log.jsonl").read_text().splitlines()
    resumed_log = (folder / "loss_log.jsonl").read_text().splitlines()
    for ours, theirs in zip(resumed_log, reference_log, strict=True):  # forget and retain terms, step by step
        ours_terms, their_terms = json.loads(ours), json.loads(theirs)
        assert ours_terms["forget_loss"] == pytest.approx(their_terms["forget_loss"], abs=1e-6)
        assert ours_terms["retain_loss"] == pytest.approx(their_terms["retain_loss"], abs=1e-6)
