"""Run folders: recognised by their marker, never confused with yours, nothing lost on any path."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn_cli.errors import UserError
from unlearn_cli.run_folder import (
    MANIFEST,
    RUN_FORMAT,
    RunInterrupted,
    inspect_folder,
    plan_run_folder,
    process_start,
    run_folder,
)


def finished_run(folder: Path, *, checkpoints: int = 0) -> Path:
    """A run folder as a finished run leaves it (written through the real lifecycle)."""
    with run_folder(folder, command="train") as run:
        run.write_text("recipe.toml", "old recipe")
        for step in range(1, checkpoints + 1):
            _checkpoint(folder, step)
        staging = run.prepare_staging()
        (staging / "model.safetensors").write_text("old model")
        run.commit(global_steps=checkpoints)
    return folder


def _checkpoint(folder: Path, step: int) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir()
    (path / "trainer_state.json").write_text("{}")
    return path


def failed_run(folder: Path, *, checkpoints: int = 0) -> Path:
    with pytest.raises(RuntimeError), run_folder(folder, command="train") as run:
        run.write_text("recipe.toml", "recipe")
        for step in range(1, checkpoints + 1):
            _checkpoint(folder, step)
        raise RuntimeError("boom")
    return folder


def marker(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def test_a_new_run_is_marked_running_then_finished(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "run"
    with run_folder(folder, command="train", record={"run_name": "x"}) as run:
        state = marker(folder)
        assert (state["format"], state["status"], state["pid"]) == (RUN_FORMAT, "running", os.getpid())
        assert not (folder / "model.safetensors").exists()
        (run.prepare_staging() / "model.safetensors").write_text("weights")
        run.commit(global_steps=3)
    state = marker(folder)
    assert state["status"] == "finished" and state["global_steps"] == 3 and state["run_name"] == "x"
    assert sorted(state["files"]) == ["manifest.json", "model.safetensors"]
    assert not (folder / ".unlearn-staging").exists()


def test_files_get_the_users_normal_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        folder = finished_run(tmp_path / "run")
    finally:
        os.umask(old)
    for name in ("manifest.json", "recipe.toml", "model.safetensors"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name


def test_a_users_own_folder_is_never_replaced(tmp_path: Path) -> None:
    """A folder with the user's own recipe.toml, notes and data is no run, whatever its file names."""
    mine = tmp_path / "project"
    mine.mkdir()
    files = {"recipe.toml": "my recipe", "notes.txt": "notes", "data.jsonl": "{}", "manifest.json": "{}"}
    for name, text in files.items():
        (mine / name).write_text(text)
    for overwrite in (False, True):
        with pytest.raises(UserError) as caught:
            plan_run_folder(mine, overwrite=overwrite)
        assert (
            "no unlearn-cli run" in caught.value.problem
            or "unlearn-cli did not write" in caught.value.problem
        )
    assert {p.name: p.read_text() for p in mine.iterdir()} == files


def test_a_finished_run_needs_overwrite_and_waits_in_previous_until_the_new_one_finishes(
    tmp_path: Path,
) -> None:
    folder = finished_run(tmp_path / "run")
    with pytest.raises(UserError) as caught:
        plan_run_folder(folder)
    assert "holds a finished `unlearn train` run" in caught.value.problem
    assert "--overwrite" in (caught.value.hint or "")
    previous = tmp_path / "run.previous"
    with run_folder(folder, command="train", overwrite=True) as run:
        assert (previous / "model.safetensors").read_text() == "old model"
        assert marker(folder)["previous"] == str(previous)
        (run.prepare_staging() / "model.safetensors").write_text("new model")
        run.commit()
    assert (folder / "model.safetensors").read_text() == "new model"
    assert not previous.exists() and "previous" not in marker(folder)


def test_a_replacing_run_that_saved_nothing_gives_the_earlier_run_back(tmp_path: Path) -> None:
    folder = finished_run(tmp_path / "run")
    with pytest.raises(UserError), run_folder(folder, command="train", overwrite=True):
        raise UserError("out of memory")
    assert (folder / "model.safetensors").read_text() == "old model"
    assert marker(folder)["status"] == "finished"
    assert not (tmp_path / "run.previous").exists()


def test_a_replacing_run_with_checkpoints_keeps_both(tmp_path: Path) -> None:
    folder = finished_run(tmp_path / "run")
    with pytest.raises(UserError) as caught, run_folder(folder, command="train", overwrite=True):
        _checkpoint(folder, 5)
        raise UserError("diverged")
    assert (folder / "checkpoint-5" / "trainer_state.json").is_file()
    assert (tmp_path / "run.previous" / "model.safetensors").read_text() == "old model"
    assert any("run.previous" in note for note in caught.value.notes)
    assert marker(folder)["status"] == "failed"
    # --overwrite again: the failed run goes, the finished one stays in .previous
    plan = plan_run_folder(folder, overwrite=True)
    assert plan.action == "replace-again"
    with run_folder(folder, command="train", overwrite=True) as run:
        assert not (folder / "checkpoint-5").exists()
        run.commit()
    assert not (tmp_path / "run.previous").exists()


def test_a_failed_run_that_saved_nothing_is_taken_over_without_overwrite(tmp_path: Path) -> None:
    folder = failed_run(tmp_path / "run")
    assert marker(folder)["status"] == "failed" and "boom" in marker(folder)["error"]
    plan = plan_run_folder(folder)
    assert plan.action == "take-over"
    with run_folder(folder, command="train") as run:
        assert not (folder / "recipe.toml").exists()
        run.commit()


def test_a_failed_run_keeps_its_checkpoints_and_offers_resume(tmp_path: Path) -> None:
    folder = failed_run(tmp_path / "run", checkpoints=2)
    assert (folder / "checkpoint-2").is_dir()
    with pytest.raises(UserError) as caught:
        plan_run_folder(folder)
    assert "holds a failed `unlearn train` run" in caught.value.problem
    assert "2 checkpoints (latest checkpoint-2)" in caught.value.problem
    assert "--resume" in (caught.value.hint or "")
    plan = plan_run_folder(folder, resume="latest", command="train")
    assert plan.action == "resume" and plan.checkpoint == folder / "checkpoint-2"
    assert plan_run_folder(folder, resume="checkpoint-1").checkpoint == folder / "checkpoint-1"


def test_an_interruption_is_recorded_and_the_checkpoints_stay(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with pytest.raises(RunInterrupted), run_folder(folder, command="unlearn") as run:
        run.write_text("recipe.toml", "recipe")
        _checkpoint(folder, 4)
        raise RunInterrupted(15, "stopped by SIGTERM at step 4", graceful=True)
    state = marker(folder)
    assert state["status"] == "interrupted" and state["stopped"]["signal"] == 15
    with pytest.raises(UserError, match="not of `unlearn train`"):
        plan_run_folder(folder, resume="latest", command="train")
    with run_folder(folder, command="unlearn", resume="latest") as run:
        assert run.resume_from == folder / "checkpoint-4"
        assert marker(folder)["status"] == "running" and len(marker(folder)["resumes"]) == 1
        run.commit()


def test_resume_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no run to resume"):
        plan_run_folder(tmp_path / "nothing", resume="latest")
    with pytest.raises(UserError, match="nothing to resume"):
        plan_run_folder(finished_run(tmp_path / "done"), resume="latest")
    with pytest.raises(UserError, match="no checkpoint to resume from"):
        plan_run_folder(failed_run(tmp_path / "early"), resume="latest")
    with pytest.raises(UserError, match="not a complete checkpoint") as caught:
        plan_run_folder(failed_run(tmp_path / "late", checkpoints=1), resume="checkpoint-9")
    assert "checkpoint-1" in (caught.value.hint or "")


def test_a_run_that_is_still_going_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = {
            "format": RUN_FORMAT,
            "status": "running",
            "pid": alive.pid,
            "pid_start": process_start(alive.pid),
            "host": os.uname().nodename,
        }
        (folder / MANIFEST).write_text(json.dumps(record))
        for overwrite in (False, True):
            with pytest.raises(UserError, match="still going"):
                plan_run_folder(folder, overwrite=overwrite)
        with pytest.raises(UserError, match="still going"):
            plan_run_folder(folder, resume="latest")
    finally:
        alive.kill()
        alive.wait()
    # the same marker once its process is gone: a killed run that saved nothing
    assert plan_run_folder(folder).action == "take-over"
    assert "killed" in inspect_folder(folder).describe()
    # a live process that got the same pid later is not that run
    record.update(pid=os.getpid(), pid_start="1")
    (folder / MANIFEST).write_text(json.dumps(record))
    assert plan_run_folder(folder).action == "take-over"


def test_a_stale_previous_is_restored_when_nothing_took_its_place(tmp_path: Path) -> None:
    folder = finished_run(tmp_path / "run")
    previous = tmp_path / "run.previous"
    folder.rename(previous)  # what a kill between moving the old run aside and marking the new one leaves
    with pytest.raises(UserError, match="holds a finished") as caught:
        plan_run_folder(folder)
    assert any("goes back" in note for note in caught.value.notes)
    assert not folder.exists() and previous.is_dir()  # a plan moves nothing
    plan = plan_run_folder(folder, overwrite=True)
    assert plan.action == "replace" and plan.before_restore is not None
    with run_folder(folder, command="train", overwrite=True) as run:
        assert (previous / "model.safetensors").read_text() == "old model"  # restored, then set aside
        run.commit()
    assert not previous.exists()


def test_a_stale_previous_beside_a_finished_run_is_reported_and_kept(tmp_path: Path) -> None:
    folder = finished_run(tmp_path / "run")
    previous = finished_run(tmp_path / "run.previous")
    with pytest.raises(UserError) as caught:
        plan_run_folder(folder)
    assert any(
        "run.previous holds an earlier run" in note and "is kept" in note for note in caught.value.notes
    )
    with pytest.raises(UserError) as caught:
        plan_run_folder(folder, overwrite=True)
    assert "already exists" in caught.value.problem and "never deletes it" in (caught.value.hint or "")
    assert (previous / "model.safetensors").read_text() == "old model"


def test_a_users_folder_named_previous_is_never_touched(tmp_path: Path) -> None:
    folder = finished_run(tmp_path / "run")
    mine = tmp_path / "run.previous"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="holds no unlearn-cli run"):
        plan_run_folder(folder, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "precious"


def test_files_added_to_a_finished_run_block_overwrite(tmp_path: Path) -> None:
    folder = finished_run(tmp_path / "run")
    (folder / "my_analysis.ipynb").write_text("mine")
    with pytest.raises(UserError) as caught:
        plan_run_folder(folder, overwrite=True)
    assert "my_analysis.ipynb" in caught.value.problem and "ever moved or deleted" in caught.value.problem


def test_a_run_folder_another_command_wrote_inside_a_run_goes_with_it(tmp_path: Path) -> None:
    """`unlearn eval` writes `<run>/eval`, a run folder of its own: the run's, unless it holds yours."""
    folder = finished_run(tmp_path / "run")
    finished_run(folder / "eval")  # a toolkit run folder inside the run
    plan_run_folder(folder, overwrite=True)  # accepted: nothing in it is foreign
    with run_folder(folder, command="train", overwrite=True) as run:
        (run.prepare_staging() / "model.safetensors").write_text("new model")
        run.commit()
    assert not (folder / "eval").exists()  # it described the replaced model, which is gone with it
    finished_run(folder / "eval")
    (folder / "eval" / "notes.txt").write_text("mine")
    with pytest.raises(UserError) as caught:
        plan_run_folder(folder, overwrite=True)
    assert "eval" in caught.value.problem and "ever moved or deleted" in caught.value.problem
    (folder / "mine").mkdir()
    (folder / "mine" / "data.txt").write_text("mine")  # a folder of yours, not a run: never the toolkit's
    assert "mine" in inspect_folder(folder).foreign


def test_unusable_output_paths(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        plan_run_folder(tmp_path / "file")
    with pytest.raises(UserError, match="cannot be a run folder"):
        plan_run_folder(Path("/"))
    with (
        pytest.raises(UserError, match="cannot create output folder"),
        run_folder(tmp_path / "file" / "sub", command="train"),
    ):
        pass  # pragma: no cover - the claim refuses


def test_logs_and_results_of_a_killed_run_are_the_toolkits(tmp_path: Path) -> None:
    """Killed before its marker listed them: the evaluation log, and an `eval/` folder holding only the
    result files a benchmark writes; a file of yours in that folder still blocks the overwrite."""
    folder = tmp_path / "run"
    with pytest.raises(RuntimeError), run_folder(folder, command="unlearn"):
        (folder / "eval_log.jsonl").write_text('{"step": 0}\n')
        (folder / "eval").mkdir()
        for name in ("TOFU_EVAL.json", "TOFU_SUMMARY.json", "TOFU_FINGERPRINTS.json", ".x.json.tmp-ab12"):
            (folder / "eval" / name).write_text("{}")
        raise RuntimeError("killed during the final evaluation")
    assert inspect_folder(folder).foreign == []
    assert plan_run_folder(folder).action == "take-over"
    (folder / "eval" / "notes.txt").write_text("mine")
    assert inspect_folder(folder).foreign == ["eval"]
    (folder / "eval" / "notes.txt").unlink()
    (folder / "eval" / "TOFU_FINGERPRINTS.json").unlink()  # the reference framework's files: never ours
    assert inspect_folder(folder).foreign == ["eval"]


def test_a_file_you_add_while_a_run_goes_stays_yours(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with pytest.raises(RuntimeError), run_folder(folder, command="train") as run:
        run.write_text("recipe.toml", "recipe")
        (folder / "my_notes.md").write_text("mine")
        run.update(global_step=3)  # e.g. at a checkpoint: the marker lists what the toolkit wrote
        raise RuntimeError("boom")
    assert "my_notes.md" not in marker(folder)["files"] and "recipe.toml" in marker(folder)["files"]
    assert inspect_folder(folder).foreign == ["my_notes.md"]
    with pytest.raises(UserError, match=r"my_notes\.md"):
        plan_run_folder(folder, overwrite=True)
    assert (folder / "my_notes.md").read_text() == "mine"


def test_outputs_never_replace_a_file_of_yours_with_the_same_name(tmp_path: Path) -> None:
    """Resuming keeps your files; when an output has the name of one of them, the outputs stay staged."""
    folder = tmp_path / "run"
    with pytest.raises(RunInterrupted), run_folder(folder, command="train") as run:
        _checkpoint(folder, 2)
        raise RunInterrupted(2, "stopped by SIGINT at step 2", graceful=True)
    (folder / "README.md").write_text("my notes on this run")
    with pytest.raises(UserError) as caught, run_folder(folder, command="train", resume="latest") as run:
        staging = run.prepare_staging()
        (staging / "README.md").write_text("model card")
        (staging / "model.safetensors").write_text("new model")
        run.commit()
    assert "README.md there is yours" in caught.value.problem
    assert (folder / "README.md").read_text() == "my notes on this run"
    assert (folder / ".unlearn-staging" / "model.safetensors").read_text() == "new model"
    assert marker(folder)["status"] == "failed"
