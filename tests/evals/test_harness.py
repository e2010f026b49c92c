"""lm-evaluation-harness tasks through `unlearn eval`, on a small task defined here (nothing downloaded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lm_eval")

FACTS = [
    {"question": "What is the capital city of France?", "choices": ["Paris", "Rome", "Lima"], "label": 0},
    {"question": "On which continent is Kenya?", "choices": ["Europe", "Africa", "Asia"], "label": 1},
    {
        "question": "Who wrote the book Hamlet?",
        "choices": ["Jane Austen", "Mark Twain", "William Shakespeare"],
        "label": 2,
    },
    {"question": "What is the capital city of Japan?", "choices": ["Tokyo", "Oslo"], "label": 0},
]


def write_task(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "facts.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in FACTS), encoding="utf-8")
    (folder / "tiny_facts.yaml").write_text(
        "task: tiny_facts\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{label}}"\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n",
        encoding="utf-8",
    )
    return folder


def write_recipe(tmp_path: Path) -> Path:
    tasks = write_task(tmp_path / "tasks")
    recipe = tmp_path / "lm_eval.toml"
    recipe.write_text(
        'extends = ["models/tiny-llama"]\n'
        "[eval.LMEval]\n"
        'handler = "LMEval"\n'
        "[eval.LMEval.args]\n"
        'tasks = ["tiny_facts"]\n'
        f'include_path = "{tasks}"\n'
        "include_default_tasks = false\n"
        "batch_size = 4\n",
        encoding="utf-8",
    )
    return recipe


def test_lm_eval_tasks_run_on_the_model_and_land_in_the_usual_files(tmp_path: Path) -> None:
    from unlearn_cli.pipelines.evaluate import run_evaluation

    recipe = write_recipe(tmp_path)
    output_dir = tmp_path / "out"
    evaluation = run_evaluation(str(recipe), [f"run.output_dir={output_dir}"])["LMEval"]
    logs = json.loads((output_dir / "LMEval_EVAL.json").read_text())
    summary = json.loads((output_dir / "LMEval_SUMMARY.json").read_text())
    assert set(summary) == {"tiny_facts/acc", "tiny_facts/acc_stderr"}
    per_document = logs["tiny_facts"]["value_by_index"]
    assert sorted(per_document) == ["0", "1", "2", "3"]
    assert all(record["acc"] in (0.0, 1.0) for record in per_document.values())
    assert len(per_document["3"]["responses"]) == 2  # one log-likelihood per choice
    # accuracy is the share of documents whose most likely choice is the target
    picked = [
        max(range(len(r["responses"])), key=lambda i: r["responses"][i][0]) for r in per_document.values()
    ]
    expected = sum(p == r["target"] for p, r in zip(picked, per_document.values(), strict=True)) / 4
    assert summary["tiny_facts/acc"] == pytest.approx(expected)
    assert (
        logs["tiny_facts"]["agg_value"] == summary["tiny_facts/acc"] == evaluation.summary["tiny_facts/acc"]
    )
    again = run_evaluation(str(recipe), [f"run.output_dir={output_dir}"])["LMEval"]
    assert again.reused == {"tiny_facts"} and again.summary == evaluation.summary


def test_an_unknown_task_is_a_user_error(run_unlearn: Any, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path)
    result = run_unlearn(
        "eval", str(recipe), 'eval.LMEval.args.tasks=["no_such_task"]', f"run.output_dir={tmp_path / 'o'}"
    )
    assert result.code == 2, result.stderr
    assert "key 'eval.LMEval.args.tasks'" in result.stderr and "Traceback" not in result.stderr
