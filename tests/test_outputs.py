"""Output folders: never lose work silently; manifests record the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearn_cli.errors import UserError
from unlearn_cli.outputs import environment_record, prepare_output_dir
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


def test_overwrite_clears_the_folder(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    (tmp_path / "checkpoint-1").mkdir()
    (tmp_path / "checkpoint-1" / "w").write_text("x")
    prepare_output_dir(tmp_path, overwrite=True)
    assert list(tmp_path.iterdir()) == []


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
