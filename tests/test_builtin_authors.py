"""The fictitious-authors generator and the `builtin://` resolver: deterministic, TOFU-shaped, safe."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from unlearn_cli import builtin
from unlearn_cli.builtin import BUILTIN_SCHEME, asset_folder, is_builtin, resolve_builtin
from unlearn_cli.builtin.authors import (
    ALL_SPLITS,
    forget_author_count,
    generate_authors,
    holdout_records,
    write_author_splits,
)
from unlearn_cli.errors import UserError

REPO = Path(__file__).resolve().parents[1]

FIELDS = {
    "author": str,
    "question": str,
    "answer": str,
    "paraphrased_answer": str,
    "perturbed_answer": list,
    "paraphrased_question": str,
    "index": int,
}


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("UNLEARN_CLI_CACHE", str(root))
    return root


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    write_author_splits(tmp_path / "a", seed=0)
    write_author_splits(tmp_path / "b", seed=0)
    write_author_splits(tmp_path / "c", seed=1)
    for split in ALL_SPLITS:
        assert (tmp_path / "a" / f"{split}.jsonl").read_bytes() == (
            tmp_path / "b" / f"{split}.jsonl"
        ).read_bytes()
    assert (tmp_path / "a" / "full.jsonl").read_bytes() != (tmp_path / "c" / "full.jsonl").read_bytes()


def test_generation_does_not_touch_global_random_state() -> None:
    import random

    random.seed(123)
    expected = random.random()
    random.seed(123)
    generate_authors()
    assert random.random() == expected


def test_split_sizes_with_defaults(tmp_path: Path) -> None:
    counts = write_author_splits(tmp_path)
    assert counts == {
        "full": 200,
        "forget01": 10,
        "forget05": 10,
        "forget10": 20,
        "retain99": 190,
        "retain95": 190,
        "retain90": 180,
        "forget01_perturbed": 10,
        "forget05_perturbed": 10,
        "forget10_perturbed": 20,
        "retain_perturbed": 20,
        "holdout01": 10,
        "holdout05": 10,
        "holdout10": 20,
        "real_authors": 100,
        "real_authors_perturbed": 100,
        "world_facts": 117,
        "world_facts_perturbed": 117,
    }
    assert sorted(p.stem for p in tmp_path.glob("*.jsonl")) == sorted(ALL_SPLITS)


def test_evaluation_splits_are_tofus(tmp_path: Path) -> None:
    write_author_splits(tmp_path, num_authors=40, facts_per_author=3)
    full = read(tmp_path / "full.jsonl")
    authors = list(dict.fromkeys(r["author"] for r in full))
    assert read(tmp_path / "forget10_perturbed.jsonl") == read(tmp_path / "forget10.jsonl")
    kept = read(tmp_path / "retain_perturbed.jsonl")
    assert (
        list(dict.fromkeys(r["author"] for r in kept)) == authors[:4]
    )  # the first 10 %, in every retain split
    assert all(r in read(tmp_path / "retain90.jsonl") for r in kept)
    holdout = read(tmp_path / "holdout10.jsonl")
    holdout_authors = list(dict.fromkeys(r["author"] for r in holdout))
    assert len(holdout_authors) == 4 and set(holdout_authors).isdisjoint(authors)  # never trained on
    assert set(holdout[0]) == set(full[0])
    one = read(tmp_path / "holdout01.jsonl")
    assert list(dict.fromkeys(r["author"] for r in one)) == holdout_authors[-1:]
    for name in ("real_authors_perturbed", "world_facts_perturbed"):
        for record in read(tmp_path / f"{name}.jsonl"):
            assert (
                len(set(record["perturbed_answer"])) == 3
                and record["answer"] not in record["perturbed_answer"]
            )
    assert read(tmp_path / "world_facts.jsonl")[0] == {
        "question": "What is the capital city of France?",
        "answer": "Paris",
        "index": 0,
    }


def test_holdout_authors_leave_full_unchanged() -> None:
    # drawn from their own random stream: the training data is the same with or without them
    assert generate_authors(12, 3, 5) == generate_authors(12, 3, 5)
    assert {r["author"] for r in holdout_records(12, 3, 5)}.isdisjoint(
        {r["author"] for r in generate_authors(12, 3, 5)}
    )


def test_the_folder_loads_as_a_local_snapshot_by_config_name(tmp_path: Path) -> None:
    import datasets

    write_author_splits(tmp_path, num_authors=10, facts_per_author=2)
    loaded = datasets.load_dataset(
        str(tmp_path), name="forget10_perturbed", split="train", cache_dir=str(tmp_path / "hf")
    )
    assert loaded.to_list() == read(tmp_path / "forget10_perturbed.jsonl")


@pytest.mark.parametrize(("tag", "retain", "percent"), [("01", "99", 1), ("05", "95", 5), ("10", "90", 10)])
def test_forget_and_retain_are_complements_by_author(
    tmp_path: Path, tag: str, retain: str, percent: int
) -> None:
    write_author_splits(tmp_path, num_authors=40, facts_per_author=5)
    full = read(tmp_path / "full.jsonl")
    forget = read(tmp_path / f"forget{tag}.jsonl")
    kept = read(tmp_path / f"retain{retain}.jsonl")
    forget_ids = {r["index"] for r in forget}
    retain_ids = {r["index"] for r in kept}
    assert forget_ids.isdisjoint(retain_ids)
    assert forget_ids | retain_ids == {r["index"] for r in full}
    assert {r["author"] for r in forget}.isdisjoint({r["author"] for r in kept})
    authors = list(dict.fromkeys(r["author"] for r in full))
    forgotten = list(dict.fromkeys(r["author"] for r in forget))
    assert forgotten == authors[len(authors) - forget_author_count(len(authors), percent) :]


def test_forget_sets_are_the_last_authors_and_never_empty() -> None:
    assert [forget_author_count(200, p) for p in (1, 5, 10)] == [2, 10, 20]
    assert [forget_author_count(20, p) for p in (1, 5, 10)] == [1, 1, 2]
    assert [forget_author_count(1, p) for p in (1, 5, 10)] == [1, 1, 1]


def test_records_have_the_tofu_fields() -> None:
    records = generate_authors()
    assert [r["index"] for r in records] == list(range(len(records)))
    for record in records:
        assert set(record) == set(FIELDS)
        for name, kind in FIELDS.items():
            assert isinstance(record[name], kind), name
        assert record["author"] in record["question"]
        assert len(record["perturbed_answer"]) == 3
        assert len(set(record["perturbed_answer"])) == 3
        assert record["answer"] not in record["perturbed_answer"]
        assert record["paraphrased_answer"] != record["answer"]
        assert record["paraphrased_question"] != record["question"]
        assert 8 <= len(record["answer"].split()) <= 20
        assert all(8 <= len(p.split()) <= 20 for p in record["perturbed_answer"])


def test_authors_are_distinct_and_have_the_asked_number_of_facts() -> None:
    records = generate_authors(num_authors=30, facts_per_author=7, seed=3)
    authors = [r["author"] for r in records]
    assert len(set(authors)) == 30
    assert all(authors.count(a) == 7 for a in set(authors))
    per_author = {}
    for r in records:
        per_author.setdefault(r["author"], []).append(r["question"])
    assert all(len(set(qs)) == 7 for qs in per_author.values())


def test_scales_to_tofu_size_quickly(tmp_path: Path) -> None:
    start = time.perf_counter()
    counts = write_author_splits(tmp_path, num_authors=200, facts_per_author=20)
    elapsed = time.perf_counter() - start
    assert counts["full"] == 4000
    assert counts["forget10"] == 400 and counts["retain90"] == 3600
    assert counts["forget01"] == 40 and counts["forget05"] == 200
    assert counts["holdout10"] == 400 and counts["retain_perturbed"] == 400
    assert elapsed < 4.0  # about 0.4 s on a 2-core CPU; generous for loaded CI machines


@pytest.mark.parametrize(("authors", "facts"), [(0, 10), (10, 0), (10, 999), (10**6, 1)])
def test_impossible_sizes_are_user_errors(tmp_path: Path, authors: int, facts: int) -> None:
    with pytest.raises(UserError, match="out of range"):
        write_author_splits(tmp_path, num_authors=authors, facts_per_author=facts)


def test_is_builtin() -> None:
    assert is_builtin("builtin://tiny-llama")
    assert not is_builtin("meta-llama/Llama-3.2-1B")
    assert not is_builtin("./builtin/tiny-llama")


def test_resolve_builds_into_the_cache(cache: Path) -> None:
    folder = resolve_builtin("builtin://fictitious-authors")
    assert folder.parent == cache
    assert folder.name == "fictitious-authors-authors20-facts10-seed0-v2"
    assert sorted(p.stem for p in folder.glob("*.jsonl")) == sorted(ALL_SPLITS)
    assert len(read(folder / "full.jsonl")) == 200
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_default_parameters_spelled_out_share_the_folder() -> None:
    plain = resolve_builtin("builtin://fictitious-authors")
    explicit = resolve_builtin("builtin://fictitious-authors?seed=0&facts=10&authors=20")
    assert plain == explicit


def test_parameters_choose_another_folder() -> None:
    small = resolve_builtin("builtin://fictitious-authors?authors=5&facts=3&seed=7")
    assert small != asset_folder("builtin://fictitious-authors")
    assert "authors5" in small.name and "facts3" in small.name and "seed7" in small.name
    assert len(read(small / "full.jsonl")) == 15


def test_a_file_inside_the_asset_can_be_named() -> None:
    path = resolve_builtin("builtin://fictitious-authors/forget10.jsonl?authors=10")
    assert path.is_file() and path.name == "forget10.jsonl"
    assert len(read(path)) == 10  # one author of ten, ten facts
    with pytest.raises(UserError, match=r"has no 'forget11\.jsonl'") as caught:
        resolve_builtin("builtin://fictitious-authors/forget11.jsonl")
    assert "forget10.jsonl" in str(caught.value)
    with pytest.raises(UserError, match="has no"):
        resolve_builtin("builtin://fictitious-authors/../" + path.parent.name + "/full.jsonl")


def test_second_resolve_reuses_the_cache() -> None:
    folder = resolve_builtin("builtin://fictitious-authors")
    stamp = (folder / "full.jsonl").stat().st_mtime_ns
    time.sleep(0.01)
    assert resolve_builtin("builtin://fictitious-authors") == folder
    assert (folder / "full.jsonl").stat().st_mtime_ns == stamp


def test_a_lost_race_keeps_the_winners_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = "builtin://fictitious-authors?authors=3"
    target = asset_folder(uri)
    asset = builtin.ASSETS["fictitious-authors"]

    def build_while_another_process_finishes(out: Path, params: dict[str, int]) -> None:
        asset.build(out, params)
        target.mkdir(parents=True)
        (target / "full.jsonl").write_text("winner\n", encoding="utf-8")

    racing = builtin.BuiltinAsset(
        asset.name, asset.description, asset.defaults, asset.version, build_while_another_process_finishes
    )
    monkeypatch.setitem(builtin.ASSETS, asset.name, racing)
    assert resolve_builtin(uri) == target
    assert (target / "full.jsonl").read_text(encoding="utf-8") == "winner\n"
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_a_failed_build_leaves_nothing(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    asset = builtin.ASSETS["fictitious-authors"]

    def broken(out: Path, params: dict[str, int]) -> None:
        (out / "half.jsonl").write_text("{}", encoding="utf-8")
        raise RuntimeError("disk full")

    monkeypatch.setitem(
        builtin.ASSETS,
        asset.name,
        builtin.BuiltinAsset(asset.name, asset.description, asset.defaults, asset.version, broken),
    )
    with pytest.raises(RuntimeError):
        resolve_builtin("builtin://fictitious-authors")
    assert list(cache.iterdir()) == []


def test_cache_root_defaults_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("UNLEARN_CLI_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert builtin.cache_root() == tmp_path / ".cache" / "unlearn-cli"


def test_unknown_asset_suggests_the_closest() -> None:
    with pytest.raises(UserError) as caught:
        resolve_builtin("builtin://fictitious-author")
    message = str(caught.value)
    assert "unknown builtin asset 'fictitious-author'" in message
    assert "did you mean 'fictitious-authors'" in message
    assert f"{BUILTIN_SCHEME}tiny-llama" in message


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("builtin://fictitious-authors?author=3", "unknown parameter 'author'"),
        ("builtin://fictitious-authors?authors=many", "must be an integer"),
        ("builtin://fictitious-authors?authors=0", "out of range"),
        ("tiny-llama", "is not a builtin asset URI"),
    ],
)
def test_bad_uris_are_user_errors(uri: str, problem: str) -> None:
    with pytest.raises(UserError, match=problem):
        resolve_builtin(uri)


def test_resolving_needs_neither_torch_nor_transformers(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from unlearn_cli.builtin import resolve_builtin; "
        "resolve_builtin('builtin://fictitious-authors'); "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    env = {**os.environ, "UNLEARN_CLI_CACHE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=REPO
    )
    assert result.stdout.split() == ["False", "False"]
