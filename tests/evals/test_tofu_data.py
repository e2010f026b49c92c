"""The TOFU suite's data: every config it reads is in the built-in set, also as a local snapshot folder."""

from __future__ import annotations

from typing import Any

import pytest

from tests.evals.conftest import SMALL_AUTHORS
from unlearn_cli.errors import UserError
from unlearn_cli.evals.generation import GreedySettings
from unlearn_cli.evals.tofu import TOFU, tofu_metric_table


def test_every_tofu_dataset_builds_from_the_builtin_set(tiny_tokenizer: Any) -> None:
    everything = list(tofu_metric_table(GreedySettings()))
    tofu = TOFU(tiny_tokenizer, tofu_path=SMALL_AUTHORS, metrics=everything)
    sizes = {name: len(tofu.dataset(name)) for name in tofu.data_specs}
    assert sizes["forget"] == sizes["forget_para"] == sizes["forget_gen"] == 4  # one author, 4 facts
    assert sizes["forget_pert"] == 12  # three perturbed answers each
    assert sizes["holdout"] == 4 and sizes["retain"] == 4
    assert sizes["ra"] == 100 and sizes["wf"] == 117 and sizes["wf_pert"] == 351


def test_a_local_snapshot_folder_gives_the_same_items_as_the_hub_id_would(tiny_tokenizer: Any) -> None:
    from unlearn_cli.builtin import resolve_builtin

    folder = resolve_builtin(SMALL_AUTHORS)
    assert (folder / "README.md").is_file()
    from_uri = TOFU(tiny_tokenizer, tofu_path=SMALL_AUTHORS, metrics=["forget_truth_ratio"])
    from_folder = TOFU(tiny_tokenizer, tofu_path=str(folder), metrics=["forget_truth_ratio"])
    for name in ("forget", "forget_pert", "holdout", "wf_gen"):
        ours, theirs = from_uri.dataset(name), from_folder.dataset(name)
        assert len(ours) == len(theirs)
        for i in range(len(ours)):
            assert ours[i]["input_ids"].tolist() == theirs[i]["input_ids"].tolist()
            assert ours[i]["labels"].tolist() == theirs[i]["labels"].tolist()
            assert int(ours[i]["index"]) == int(theirs[i]["index"])


def test_holdout_follows_the_forget_split_unless_named(tiny_tokenizer: Any) -> None:
    assert TOFU(tiny_tokenizer, forget_split="forget05", metrics=[]).settings["holdout_split"] == "holdout05"
    named = TOFU(tiny_tokenizer, forget_split="forget05", holdout_split="holdout10", metrics=[])
    assert named.data_specs["holdout"].args["hf_args"]["name"] == "holdout10"


@pytest.mark.parametrize(
    ("arguments", "key", "message"),
    [
        ({"metrics": ["forget_qualty"]}, "metrics", "did you mean 'forget_quality'"),
        (
            {"custom_metrics": {"forget_Q_A_Prob": {"handler": "probability"}}},
            "custom_metrics.forget_Q_A_Prob",
            "",
        ),
        (
            {
                "custom_metrics": {"mine": {"handler": "probabilty", "data": {"data": "forget"}}},
                "metrics": ["mine"],
            },
            "metrics",
            "did you mean 'probability'",
        ),
        (
            {
                "custom_metrics": {"mine": {"handler": "probability", "data": {"data": "nope"}}},
                "metrics": ["mine"],
            },
            "custom_metrics",
            "datasets:",
        ),
        ({"retain_logs_path": "/no/such/TOFU_EVAL.json"}, "retain_logs_path", "not found"),
        ({"batch_size": 0}, "batch_size", "at least 1"),
        ({"max_new_tokens": 0}, "max_new_tokens", "max_new_tokens must be at least 1, got 0"),
        (
            {
                "custom_metrics": {
                    "mine": {"handler": "rouge", "data": {"data": "forget_gen"}, "max_new_tokens": 0}
                },
                "metrics": ["mine"],
            },
            "custom_metrics.mine.max_new_tokens",
            "at least 1",
        ),
    ],
)
def test_mistakes_are_user_errors_before_any_data_loads(
    tiny_tokenizer: Any, arguments: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(UserError) as caught:
        TOFU(tiny_tokenizer, tofu_path="/no/such/folder", **arguments)
    assert caught.value.key == key
    assert message in caught.value.render()


def test_a_custom_metric_runs_a_registered_function_on_the_benchmarks_data(tiny_tokenizer: Any) -> None:
    tofu = TOFU(
        tiny_tokenizer,
        tofu_path=SMALL_AUTHORS,
        metrics=["holdout_Q_A_Prob"],
        custom_metrics={"holdout_Q_A_Prob": {"handler": "probability", "data": {"data": "holdout"}}},
    )
    assert tofu.order == ["holdout_Q_A_Prob"]
    assert len(tofu.dataset("holdout")) == 4


def test_the_reference_model_is_loaded_and_scored_once_per_evaluator(
    tiny_tokenizer: Any, tiny_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unlearn_cli.builtin import resolve_builtin
    from unlearn_cli.evals import metrics

    loaded: list[str | None] = []
    load = metrics.load_reference_model

    def counted(inputs: Any) -> Any:
        loaded.append(inputs.reference_model_path)
        return load(inputs)

    monkeypatch.setattr(metrics, "load_reference_model", counted)
    reference = str(resolve_builtin("builtin://tiny-llama"))
    tofu = TOFU(
        tiny_tokenizer, tofu_path=SMALL_AUTHORS, metrics=["mia_reference"], reference_model_path=reference
    )
    first = tofu.evaluate(tiny_model)  # e.g. the evaluation points of a training run
    second = tofu.evaluate(tiny_model)
    assert loaded == [reference]
    assert second.results == first.results
