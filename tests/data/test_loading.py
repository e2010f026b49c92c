"""`load_hf_dataset`: local formats, builtin data, and the errors a user can cause."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from unlearn_cli.data import QADataset, TemplateArgs, load_hf_dataset
from unlearn_cli.data.qa import read_idk_phrases
from unlearn_cli.errors import UserError

ROWS = [
    {"question": "Where was Lin Wei born?", "answer": "In Oslo.", "index": 0},
    {"question": "What does Aisha Okafor write?", "answer": "Poetry.", "index": 1},
]


def write_all_formats(folder: Path) -> dict[str, Path]:
    paths = {f: folder / f"qa.{f}" for f in ("jsonl", "json", "csv", "parquet")}
    paths["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    paths["json"].write_text(json.dumps(ROWS), encoding="utf-8")
    lines = ["question,answer,index", *(f'"{r["question"]}","{r["answer"]}",{r["index"]}' for r in ROWS)]
    paths["csv"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    datasets.Dataset.from_list(ROWS).to_parquet(str(paths["parquet"]))
    return paths


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_local_files_load_by_builder_or_by_path(fmt, tmp_path: Path, bpe_tokenizer) -> None:
    path = write_all_formats(tmp_path)[fmt]
    builder = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}[fmt]
    by_builder = load_hf_dataset({"path": builder, "data_files": str(path), "split": "train"})
    by_path = load_hf_dataset({"path": str(path)})
    for loaded in (by_builder, by_path):
        assert isinstance(loaded, datasets.Dataset)
        assert loaded["question"] == [r["question"] for r in ROWS]
    ds = QADataset(
        {"path": builder, "data_files": str(path)}, tokenizer=bpe_tokenizer, template_args=TemplateArgs()
    )
    assert [ds[i]["index"].item() for i in range(2)] == [0, 1]


def test_relative_paths_are_read_from_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    write_all_formats(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert len(load_hf_dataset({"path": "json", "data_files": "qa.jsonl", "split": "train"})) == 2
    assert (
        len(load_hf_dataset({"path": "json", "data_files": ["qa.jsonl", "qa.json"], "split": "train"})) == 4
    )
    assert len(load_hf_dataset({"path": "json", "data_files": "qa.json*", "split": "train"})) == 4


def test_paths_under_the_home_folder_load_as_the_machine_checks_found_them(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_all_formats(tmp_path)
    assert len(load_hf_dataset({"path": "json", "data_files": ["~/qa.jsonl"], "split": "train"})) == 2
    assert len(load_hf_dataset({"path": "~/qa.csv"})) == 2
    (tmp_path / "idk.txt").write_text("No idea.\n", encoding="utf-8")
    assert read_idk_phrases("~/idk.txt") == ("No idea.",)


def test_missing_file_names_the_key_and_where_it_looked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"file not found: data/forget\.jsonl") as info:
        load_hf_dataset(
            {"path": "json", "data_files": "data/forget.jsonl"}, key="data.train.forget.args.hf_args"
        )
    assert info.value.key == "data.train.forget.args.hf_args.data_files"
    assert str(tmp_path / "data" / "forget.jsonl") in info.value.hint


def test_unknown_split_and_several_splits_are_user_errors(tmp_path: Path) -> None:
    paths = write_all_formats(tmp_path)
    with pytest.raises(UserError, match=r"Unknown split \"test\"") as info:
        load_hf_dataset({"path": "json", "data_files": str(paths["jsonl"]), "split": "test"})
    assert info.value.key == "hf_args.split"
    two = {"train": str(paths["jsonl"]), "test": str(paths["json"])}
    with pytest.raises(UserError, match="has several: 'train', 'test'") as info:
        load_hf_dataset({"path": "json", "data_files": two})
    assert info.value.key == "hf_args.split"
    assert len(load_hf_dataset({"path": "json", "data_files": two, "split": "test"})) == 2
    single = load_hf_dataset({"path": "json", "data_files": {"forget": str(paths["jsonl"])}})
    assert isinstance(single, datasets.Dataset) and len(single) == 2


def test_other_malformed_hf_args(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs a 'path'") as info:
        load_hf_dataset({"name": "forget10"})
    assert info.value.key == "hf_args.path"
    with pytest.raises(UserError, match="needs 'data_files'"):
        load_hf_dataset({"path": "csv"})
    with pytest.raises(UserError, match="streaming") as info:
        path = write_all_formats(tmp_path)["jsonl"]
        load_hf_dataset({"path": "json", "data_files": str(path), "streaming": True})
    assert info.value.key == "hf_args.streaming"


def test_builtin_fictitious_authors_loads_a_named_subset(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("UNLEARN_CLI_CACHE", str(tmp_path / "assets"))
    uri = "builtin://fictitious-authors?authors=4&facts=5"
    forget = load_hf_dataset({"path": uri, "name": "forget10"})
    full = load_hf_dataset({"path": uri, "name": "full"})
    assert isinstance(forget, datasets.Dataset) and 0 < len(forget) < len(full) == 20
    assert {"question", "answer", "perturbed_answer", "index"} <= set(full.column_names)
    assert (
        len(load_hf_dataset({"path": "builtin://fictitious-authors/forget10.jsonl?authors=4&facts=5"})) >= 1
    )
    with pytest.raises(UserError, match="needs a 'name'") as info:
        load_hf_dataset({"path": uri})
    assert info.value.key == "hf_args.name" and "forget10" in info.value.problem
    with pytest.raises(UserError, match="no subset 'forget11'") as info:
        load_hf_dataset({"path": uri, "name": "forget11"}, key="k")
    assert info.value.key == "k.name" and "forget10" in (info.value.hint or "")
    with pytest.raises(UserError) as info:
        load_hf_dataset({"path": "builtin://fictitious-author"})
    assert info.value.key == "hf_args.path"


@pytest.mark.skipif(int(datasets.__version__.split(".")[0]) < 4, reason="datasets < 4 still runs scripts")
def test_dataset_with_a_loading_script_points_to_data_files(tmp_path: Path) -> None:
    folder = tmp_path / "scripted"
    folder.mkdir()
    (folder / "scripted.py").write_text("import datasets\n", encoding="utf-8")
    with pytest.raises(UserError, match="no longer supported") as info:
        load_hf_dataset({"path": str(folder), "split": "train"}, key="few_shot_dataset_hf_args")
    assert info.value.key == "few_shot_dataset_hf_args"
    assert 'path = "json"' in (info.value.hint or "") and "data_files" in (info.value.hint or "")
