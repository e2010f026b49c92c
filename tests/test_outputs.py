"""Output folders: never lose work silently; manifests record the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearn_cli.errors import UserError
from unlearn_cli.outputs import environment_record, prepare_output_dir, replacing_previous_run
from unlearn_cli.pipelines.inspect import token_segments


def test_new_and_empty_folders_are_accepted(tmp_path: Path) -> None:
    prepare_output_dir(tmp_path / "a" / "b", overwrite=False)
    assert (tmp_path / "a" / "b").is_dir()
    prepare_output_dir(tmp_path / "a" / "b", overwrite=False)


def test_non_empty_folder_is_refused_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_text("precious")
    with pytest.raises(UserError) as raised:
        prepare_output_dir(tmp_path, overwrite=False)
    assert "not empty" in raised.value.problem
    assert "--overwrite" in (raised.value.hint or "")
    assert (tmp_path / "model.safetensors").read_text() == "precious"


def test_overwrite_moves_an_earlier_run_aside_until_the_new_one_succeeds(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.toml").write_text("old")
    (run / "checkpoint-1").mkdir()
    previous = prepare_output_dir(run, overwrite=True)
    assert previous == tmp_path / "run.previous"
    assert list(run.iterdir()) == [] and (previous / "recipe.toml").read_text() == "old"
    with replacing_previous_run(run, previous):
        (run / "recipe.toml").write_text("new")
    assert (run / "recipe.toml").read_text() == "new" and not previous.exists()


def test_a_failed_run_gives_the_earlier_run_back(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text("old")
    previous = prepare_output_dir(run, overwrite=True)
    with pytest.raises(RuntimeError), replacing_previous_run(run, previous):
        (run / "recipe.toml").write_text("half-written")
        raise RuntimeError("out of memory")
    assert sorted(p.name for p in run.iterdir()) == ["manifest.json"]
    assert (run / "manifest.json").read_text() == "old" and not (tmp_path / "run.previous").exists()


def test_overwrite_refuses_a_folder_that_holds_no_earlier_run(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(UserError) as raised:
        prepare_output_dir(tmp_path, overwrite=True)
    assert "holds no earlier run" in raised.value.problem
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_an_output_folder_that_cannot_be_created_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot create output folder"):
        prepare_output_dir(tmp_path / "file" / "sub", overwrite=False)


def test_a_file_is_not_an_output_folder(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        prepare_output_dir(target, overwrite=True)


def test_environment_record_names_the_libraries() -> None:
    record = environment_record()
    assert record["versions"]["torch"] and record["versions"]["transformers"]
    assert record["versions"]["unlearn-cli"]


def test_token_segments_split_prompt_and_trained_runs() -> None:
    segments = token_segments([5, 6, 7, 8, 9], [-100, -100, 7, 8, -100])
    assert segments == [(False, [5, 6]), (True, [7, 8]), (False, [9])]
