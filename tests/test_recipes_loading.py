"""Recipe files: locating, TOML errors, `extends` (relative, packaged, cycles, missing), merging, origins."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from unlearn_cli.errors import UserError
from unlearn_cli.recipes.loading import (
    deep_merge,
    load_merged,
    locate_recipe,
    packaged_recipe_names,
    packaged_recipe_path,
    packaged_recipes_root,
)

PACKAGED_LLAMA = packaged_recipes_root() / "models" / "Llama-3.2-1B-Instruct.toml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- deep merge ---------------------------------------------------------------------------------------------


def test_deep_merge_tables_merge_arrays_and_scalars_replace() -> None:
    base = {"t": {"a": 1, "b": {"x": 1, "y": 2}, "arr": [1, 2, 3]}, "s": "base", "keep": True}
    update = {"t": {"b": {"y": 20, "z": 30}, "arr": [9]}, "s": "update", "new": 1.5}
    before = copy.deepcopy(base)
    origins: dict[tuple[str, ...], str] = {}

    merged = deep_merge(base, update, origin="u.toml", origins=origins)

    assert merged == {
        "t": {"a": 1, "b": {"x": 1, "y": 20, "z": 30}, "arr": [9]},
        "s": "update",
        "keep": True,
        "new": 1.5,
    }
    assert base == before  # the base is not modified
    assert origins[("t", "b", "z")] == "u.toml"
    assert origins[("t", "arr")] == "u.toml"
    assert ("t", "a") not in origins  # only what the update wrote


def test_deep_merge_scalar_replacing_a_table_drops_its_stale_origins() -> None:
    origins = {("t",): "base.toml", ("t", "x"): "base.toml", ("other",): "base.toml"}
    merged = deep_merge({"t": {"x": 1}, "other": 2}, {"t": 5}, origin="top.toml", origins=origins)
    assert merged == {"t": 5, "other": 2}
    assert origins == {("t",): "top.toml", ("other",): "base.toml"}


def test_deep_merge_table_replacing_a_scalar() -> None:
    origins: dict[tuple[str, ...], str] = {}
    merged = deep_merge({"t": 1}, {"t": {"x": 1}}, origin="top.toml", origins=origins)
    assert merged == {"t": {"x": 1}}
    assert origins == {("t",): "top.toml", ("t", "x"): "top.toml"}


# --- extends ------------------------------------------------------------------------------------------------


def test_extends_relative_to_the_recipe_folder_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "bases" / "common.toml", '[run]\nname = "common"\nseed = 1\n[vars]\nxs = [1, 2]\n')
    write(tmp_path / "bases" / "model.toml", 'extends = "common"\n[vars]\nmodel = "m"\n')
    top = write(
        tmp_path / "exp" / "top.toml",
        'extends = ["../bases/model.toml"]\n[run]\nseed = 7\n[vars]\nxs = [3]\n',
    )
    monkeypatch.chdir(tmp_path / "bases")  # a path relative to the cwd would find a different file

    recipe = load_merged(top)

    assert recipe.values == {"run": {"name": "common", "seed": 7}, "vars": {"xs": [3], "model": "m"}}
    assert "extends" not in recipe.values
    assert recipe.source == top


def test_extends_later_bases_win_and_the_file_itself_wins_last(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", "x = 1\ny = 1\nz = 1\n[t]\na = 1\n")
    write(tmp_path / "b.toml", "y = 2\nz = 2\n[t]\nb = 2\n")
    top = write(tmp_path / "top.toml", 'extends = ["a", "b.toml"]\nz = 3\n')

    recipe = load_merged(top)

    assert recipe.values == {"x": 1, "y": 2, "z": 3, "t": {"a": 1, "b": 2}}
    assert recipe.origin(("x",)) == str(tmp_path / "a.toml")
    assert recipe.origin(("y",)) == str(tmp_path / "b.toml")
    assert recipe.origin(("z",)) == str(top)
    assert recipe.origin(("t", "a")) == str(tmp_path / "a.toml")
    assert recipe.origin(("t", "b")) == str(tmp_path / "b.toml")


def test_extends_a_packaged_recipe_by_name(tmp_path: Path) -> None:
    top = write(
        tmp_path / "mine.toml",
        'extends = ["models/Llama-3.2-1B-Instruct"]\n[model.template_args]\ndate_string = "1 Jan 2030"\n',
    )
    recipe = load_merged(top)

    model = recipe.values["model"]
    assert model["handler"] == "AutoModelForCausalLM"
    assert model["model_args"]["pretrained_model_name_or_path"] == "meta-llama/Llama-3.2-1B-Instruct"
    assert model["template_args"] == {
        "apply_chat_template": True,
        "system_prompt": "You are a helpful assistant.",
        "date_string": "1 Jan 2030",
    }
    assert recipe.origin(("model", "handler")) == str(PACKAGED_LLAMA)
    assert recipe.origin(("model", "template_args", "system_prompt")) == str(PACKAGED_LLAMA)
    assert recipe.origin(("model", "template_args", "date_string")) == str(top)


def test_a_local_file_shadows_a_packaged_recipe_of_the_same_name(tmp_path: Path) -> None:
    write(tmp_path / "models" / "Llama-3.2-1B-Instruct.toml", "[vars]\nlocal = true\n")
    top = write(tmp_path / "top.toml", 'extends = ["models/Llama-3.2-1B-Instruct"]\n')
    assert load_merged(top).values == {"vars": {"local": True}}


def test_diamond_extends_is_not_a_cycle(tmp_path: Path) -> None:
    write(tmp_path / "d.toml", "d = 1\n")
    write(tmp_path / "b.toml", 'extends = ["d"]\nb = 1\n')
    write(tmp_path / "c.toml", 'extends = ["d"]\nc = 1\n')
    top = write(tmp_path / "a.toml", 'extends = ["b", "c"]\n')
    assert load_merged(top).values == {"d": 1, "b": 1, "c": 1}


def test_extends_cycle_names_the_whole_chain(tmp_path: Path) -> None:
    first = write(tmp_path / "first.toml", 'extends = ["sub/second"]\n')
    second = write(tmp_path / "sub" / "second.toml", 'extends = ["../first.toml"]\n')

    with pytest.raises(UserError) as caught:
        load_merged(first.resolve())

    error = caught.value
    assert error.problem == f"`extends` forms a cycle: {first} -> {second} -> {first}"
    assert error.file == str(first)
    assert error.key == "extends"


def test_a_recipe_extending_itself_is_a_cycle(tmp_path: Path) -> None:
    me = write(tmp_path / "me.toml", 'extends = ["me"]\n')
    with pytest.raises(UserError, match=r"`extends` forms a cycle: .*me\.toml -> .*me\.toml\n  hint: "):
        load_merged(me)


def test_missing_extends_target_names_file_index_and_where_it_looked(tmp_path: Path) -> None:
    top = write(tmp_path / "top.toml", 'extends = ["base.toml", "nothere"]\n')
    write(tmp_path / "base.toml", "x = 1\n")

    with pytest.raises(UserError) as caught:
        load_merged(top)

    error = caught.value
    assert error.file == str(top)
    assert error.key == "extends[1]"
    assert error.problem == (
        f"extends target 'nothere' not found (looked for {tmp_path / 'nothere'} and a packaged recipe "
        "of that name)"
    )
    assert error.hint is not None and "relative to the recipe's folder" in error.hint


def test_misspelt_packaged_extends_target_suggests_the_packaged_name(tmp_path: Path) -> None:
    top = write(tmp_path / "top.toml", 'extends = ["models/Llama-3.2-1B-Instrct"]\n')
    with pytest.raises(UserError) as caught:
        load_merged(top)
    assert caught.value.hint is not None
    assert caught.value.hint.startswith("did you mean 'models/Llama-3.2-1B-Instruct'")


def test_missing_target_inside_a_base_names_the_base_file(tmp_path: Path) -> None:
    base = write(tmp_path / "base.toml", 'extends = ["gone"]\n')
    top = write(tmp_path / "top.toml", 'extends = ["base"]\n')
    with pytest.raises(UserError) as caught:
        load_merged(top)
    assert caught.value.file == str(base.resolve())
    assert caught.value.key == "extends[0]"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("extends = 3\n", "extends", "`extends` must be a list of recipe paths or names, got int"),
        ('extends = ["a", 1]\n', "extends[1]", "each `extends` entry must be a string, got int"),
    ],
)
def test_malformed_extends(tmp_path: Path, text: str, key: str, problem: str) -> None:
    write(tmp_path / "a.toml", "")
    top = write(tmp_path / "top.toml", text)
    with pytest.raises(UserError) as caught:
        load_merged(top)
    assert (caught.value.key, caught.value.problem) == (key, problem)


# --- TOML errors, locating ----------------------------------------------------------------------------------


def test_toml_syntax_error_gives_file_line_and_column(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", '[run]\nname = "ok"\nseed = forty\n')
    with pytest.raises(UserError) as caught:
        load_merged(bad)
    assert caught.value.file == str(bad)
    assert caught.value.problem == "TOML syntax error: Invalid value (at line 3, column 8)"


def test_toml_syntax_error_in_a_base_names_the_base(tmp_path: Path) -> None:
    base = write(tmp_path / "base.toml", "x = \n")
    top = write(tmp_path / "top.toml", 'extends = ["base"]\n')
    with pytest.raises(UserError) as caught:
        load_merged(top)
    assert caught.value.file == str(base.resolve())
    assert "(at line 1, column 5)" in caught.value.problem


def test_locate_recipe_by_path_and_by_packaged_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = write(tmp_path / "mine.toml", "")
    monkeypatch.chdir(tmp_path)
    assert locate_recipe("mine.toml") == mine.resolve()
    assert locate_recipe("models/Llama-3.2-1B-Instruct") == PACKAGED_LLAMA
    assert locate_recipe("tofu_finetune.toml") == packaged_recipes_root() / "tofu_finetune.toml"


def test_locate_recipe_missing_suggests_close_packaged_names() -> None:
    with pytest.raises(UserError) as caught:
        locate_recipe("tofu_finetun")
    assert caught.value.problem == (
        "recipe 'tofu_finetun' not found: no such file and no packaged recipe of that name"
    )
    assert caught.value.hint == "did you mean 'tofu_finetune'?"


def test_locate_recipe_missing_without_close_name_explains_what_is_accepted() -> None:
    with pytest.raises(UserError) as caught:
        locate_recipe("zzzzqqqq/nothing.toml")
    assert caught.value.hint == (
        "give a path to a .toml file, or a packaged recipe name (see `unlearn recipe list`)"
    )


def test_packaged_recipe_names_and_paths() -> None:
    names = packaged_recipe_names()
    assert "tofu_finetune" in names
    assert "models/Llama-3.2-1B-Instruct" in names
    assert names == sorted(names)
    assert packaged_recipe_path("models/Llama-3.2-1B-Instruct") == PACKAGED_LLAMA
    assert packaged_recipe_path("models/Llama-3.2-1B-Instruct.toml") == PACKAGED_LLAMA
    assert packaged_recipe_path("models/nope") is None


# --- origins ------------------------------------------------------------------------------------------------


def test_origin_falls_back_to_the_closest_parent_then_the_source(tmp_path: Path) -> None:
    base = write(tmp_path / "base.toml", "[t]\na = 1\n")
    top = write(tmp_path / "top.toml", 'extends = ["base"]\nz = 1\n')
    recipe = load_merged(top)
    assert recipe.origin(("t", "a", "deeper")) == str(base.resolve())
    assert recipe.origin(("t", "not-there")) == str(base.resolve())
    assert recipe.origin(("nowhere",)) == str(top)
    assert recipe.origin(("z",)) == str(top)


def test_packaged_tofu_recipe_merges_with_its_model(tmp_path: Path) -> None:
    recipe = load_merged(packaged_recipe_path("tofu_finetune") or Path("missing"))
    assert set(recipe.values) == {"model", "run", "data", "collator", "trainer"}
    assert recipe.values["trainer"]["args"]["learning_rate"] == 1e-5
    assert recipe.origin(("model", "model_args", "dtype")) == str(PACKAGED_LLAMA)
    assert recipe.origin(("trainer", "args", "learning_rate")) == str(
        packaged_recipes_root() / "tofu_finetune.toml"
    )


# --- `_replace_`: a table that replaces the inherited one ---------------------------------------------------

GEMMA = packaged_recipes_root() / "models" / "gemma-7b-it.toml"
LLAMA2_CHAT = packaged_recipes_root() / "models" / "Llama-2-7b-chat-hf.toml"


def _has_marker(value: object) -> bool:
    if isinstance(value, dict):
        return "_replace_" in value or any(_has_marker(v) for v in value.values())
    return False


def test_deep_merge_replace_marker_replaces_the_table_and_its_origins() -> None:
    origins = {("t",): "base.toml", ("t", "x"): "base.toml", ("t", "y"): "base.toml"}
    update = {"t": {"_replace_": True, "y": 2}}
    merged = deep_merge({"t": {"x": 1, "y": 1}}, update, origin="top.toml", origins=origins)
    assert merged == {"t": {"_replace_": True, "y": 2}}  # kept until the whole recipe is merged
    assert origins == {("t",): "top.toml", ("t", "_replace_"): "top.toml", ("t", "y"): "top.toml"}


@pytest.mark.parametrize(
    ("model", "path", "model_file"),
    [
        ("gemma-7b-it", "google/gemma-7b-it", GEMMA),
        ("Llama-2-7b-chat-hf", "meta-llama/Llama-2-7b-chat-hf", LLAMA2_CHAT),
    ],
)
def test_a_later_model_recipe_replaces_the_inherited_model_whole(
    tmp_path: Path, model: str, path: str, model_file: Path
) -> None:
    top = write(tmp_path / "mine.toml", f'extends = ["tofu_finetune", "models/{model}"]\n')

    recipe = load_merged(top)

    values = recipe.values["model"]
    # neither Llama 3's system_prompt nor its date_string leaks into a chat template that has none
    assert values["template_args"] == {"apply_chat_template": True}
    assert values["model_args"]["pretrained_model_name_or_path"] == path
    assert values["tokenizer_args"] == {"pretrained_model_name_or_path": path}
    assert not _has_marker(recipe.values)
    assert recipe.origin(("model", "template_args", "system_prompt")) == str(model_file)
    assert not any(
        key[:1] == ("model",) and origin == str(PACKAGED_LLAMA) for key, origin in recipe.origins.items()
    )
    assert not any("_replace_" in key for key in recipe.origins)
    assert recipe.values["trainer"]["handler"] == "finetune"  # the rest of tofu_finetune still merges


def test_a_recipe_adjusting_its_inherited_model_still_merges(tmp_path: Path) -> None:
    top = write(
        tmp_path / "mine.toml", 'extends = ["tofu_finetune"]\n[model.model_args]\ndtype = "float32"\n'
    )

    recipe = load_merged(top)

    model = recipe.values["model"]
    assert model["model_args"] == {
        "pretrained_model_name_or_path": "meta-llama/Llama-3.2-1B-Instruct",
        "dtype": "float32",
        "attn_implementation": "flash_attention_2",
    }
    assert model["template_args"]["system_prompt"] == "You are a helpful assistant."
    assert not _has_marker(recipe.values)
    assert recipe.origin(("model", "model_args", "dtype")) == str(top)
    assert recipe.origin(("model", "model_args", "attn_implementation")) == str(PACKAGED_LLAMA)


def test_a_merged_base_keeps_replacing_what_it_is_merged_onto(tmp_path: Path) -> None:
    write(
        tmp_path / "my_gemma.toml",
        'extends = ["models/gemma-7b-it"]\n[model.model_args]\ndtype = "float32"\n',
    )
    top = write(tmp_path / "top.toml", 'extends = ["tofu_finetune", "my_gemma"]\n')

    model = load_merged(top).values["model"]

    assert model["model_args"]["pretrained_model_name_or_path"] == "google/gemma-7b-it"
    assert model["model_args"]["dtype"] == "float32"
    assert model["template_args"] == {"apply_chat_template": True}


def test_replace_markers_are_removed_at_any_depth_even_with_nothing_to_replace(tmp_path: Path) -> None:
    write(tmp_path / "base.toml", "[vars.t]\na = 1\nb = 1\n")
    top = write(
        tmp_path / "top.toml",
        'extends = ["base"]\n[vars.t]\n_replace_ = true\nb = 2\n[vars.t.deep]\n_replace_ = true\nc = 3\n'
        "[vars.other]\n_replace_ = false\nd = 4\n",
    )
    assert load_merged(top).values == {"vars": {"t": {"b": 2, "deep": {"c": 3}}, "other": {"d": 4}}}
    alone = write(tmp_path / "alone.toml", "[run]\n_replace_ = true\nname = 'x'\n")
    assert load_merged(alone).values == {"run": {"name": "x"}}


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[t]\n_replace_ = "yes"\n', "t._replace_", "`_replace_` must be true or false, got str"),
        ("_replace_ = true\n", "_replace_", "`_replace_` at the top level of a recipe has no effect"),
    ],
)
def test_malformed_replace_marker(tmp_path: Path, text: str, key: str, problem: str) -> None:
    bad = write(tmp_path / "bad.toml", text)
    with pytest.raises(UserError) as caught:
        load_merged(bad)
    assert (caught.value.file, caught.value.key, caught.value.problem) == (str(bad), key, problem)


def test_every_packaged_model_recipe_replaces_the_inherited_model() -> None:
    for name in packaged_recipe_names():
        if name.startswith("models/"):
            path = packaged_recipe_path(name)
            assert path is not None
            assert "[model]\n_replace_ = true" in path.read_text(encoding="utf-8"), name


# --- files that are not recipes -----------------------------------------------------------------------------


def test_non_utf8_recipe_names_the_file_and_byte_offset(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('[run]\nname = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(UserError) as caught:
        load_merged(bad)
    assert caught.value.file == str(bad)
    assert caught.value.problem == "not UTF-8 text: invalid byte 0xe9 at byte offset 17 (line 2)"
    assert caught.value.hint is not None and "UTF-8" in caught.value.hint


def test_a_folder_given_as_the_recipe_is_called_a_folder(tmp_path: Path) -> None:
    write(tmp_path / "recipes" / "a.toml", "")
    with pytest.raises(UserError) as caught:
        locate_recipe(str(tmp_path / "recipes"))
    assert caught.value.problem == f"'{tmp_path / 'recipes'}' is a folder, not a recipe file"
    assert caught.value.hint == "give one of the .toml files inside it (a.toml)"


def test_a_folder_given_as_an_extends_target_is_called_a_folder(tmp_path: Path) -> None:
    (tmp_path / "bases").mkdir()
    top = write(tmp_path / "top.toml", 'extends = ["bases"]\n')
    with pytest.raises(UserError) as caught:
        load_merged(top)
    assert (caught.value.file, caught.value.key) == (str(top), "extends[0]")
    assert caught.value.problem == f"'{tmp_path / 'bases'}' is a folder, not a recipe file"


def test_locate_recipe_without_suffix_works_for_relative_and_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = write(tmp_path / "sub" / "mine.toml", "")
    monkeypatch.chdir(tmp_path)
    assert locate_recipe("sub/mine") == mine.resolve()
    assert locate_recipe(str(tmp_path / "sub" / "mine")) == mine.resolve()
    assert packaged_recipe_path(str(PACKAGED_LLAMA.with_suffix(""))) is None  # an absolute path is a file
