"""The quickstart chain: every step is a packaged recipe that validates with the overrides the chain gives."""

from __future__ import annotations

from pathlib import Path

from unlearn_cli.quickstart import steps
from unlearn_cli.recipes import load_recipe


def test_every_step_validates_and_evaluates_against_the_retain_model(tmp_path: Path) -> None:
    chain = steps(tmp_path)
    assert [command for command, _, _ in chain] == ["train", "train", "unlearn", "unlearn", *["eval"] * 5]
    for command, name, overrides in chain:
        recipe = load_recipe(name, overrides)
        if command == "eval":
            assert recipe.output_dir.parent.parent == tmp_path  # <run>/eval
    retain_logs = str(tmp_path / "retain" / "eval" / "TOFU_EVAL.json")
    evaluated = [overrides for command, _, overrides in chain if command == "eval"]
    assert retain_logs not in " ".join(evaluated[0])  # the retain model's own first evaluation
    assert all(f"retain_logs_path={retain_logs}" in o for o in evaluated[1:])


def test_the_target_and_retain_models_differ_only_by_the_forget_authors() -> None:
    target, retain = load_recipe("quickstart/target"), load_recipe("quickstart/retain")
    assert (
        set(target.data["train"])
        == set(retain.data["train"])
        == {"authors_full", "real_authors", "world_facts"}
    )
    assert target.data["train"]["authors_full"].args["hf_args"]["name"] == "full"
    assert retain.data["train"]["authors_full"].args["hf_args"]["name"] == "retain90"
    assert target.trainer is not None and retain.trainer is not None
    assert target.trainer.args == retain.trainer.args


def test_a_second_quickstart_names_its_own_fix_before_running_anything(run_unlearn, tmp_path: Path) -> None:
    import json

    from unlearn_cli.run_folder import MANIFEST, RUN_FORMAT

    for name, status in (("target", "finished"), ("retain", "failed")):
        (tmp_path / name).mkdir()
        marker = {"format": RUN_FORMAT, "status": status, "command": "train"}
        (tmp_path / name / MANIFEST).write_text(json.dumps(marker), encoding="utf-8")
    result = run_unlearn("quickstart", "--output", str(tmp_path))
    assert result.code == 2
    assert "finished quickstart run(s) target;" in result.stderr
    assert "unlearn quickstart --overwrite" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["retain", "target"]  # nothing ran


def test_a_folder_that_would_stop_the_chain_halfway_stops_it_first(run_unlearn, tmp_path: Path) -> None:
    (tmp_path / "GradDiff").mkdir()
    (tmp_path / "GradDiff" / "notes.txt").write_text("mine")
    result = run_unlearn("quickstart", "--output", str(tmp_path), "--overwrite")
    assert result.code == 2
    assert f"output folder {tmp_path / 'GradDiff'}" in result.stderr and "notes.txt" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["GradDiff"]  # nothing ran


def test_python_m_unlearn_cli_quickstart_is_the_same_command(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "notes.txt").write_text("mine")
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "unlearn_cli.quickstart", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "notes.txt" in proc.stderr and "Traceback" not in proc.stderr
