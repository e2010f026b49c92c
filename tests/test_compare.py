"""`unlearn compare`: summaries of several runs in one table, written as CSV and JSON, with plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

PNG = b"\x89PNG\r\n\x1a\n"
COLUMNS = ["forget_quality", "model_utility", "forget_Q_A_Prob", "privleak"]


def make_run(
    root: Path,
    name: str,
    trainer: str,
    summary: dict[str, Any],
    *,
    split: str = "forget10",
    steps: list[dict[str, Any]] | None = None,
    in_eval_folder: bool = True,
) -> Path:
    """A run folder as `train`/`unlearn` and `eval` leave it."""
    run = root / name
    evaluation = run / "eval" if in_eval_folder else run
    evaluation.mkdir(parents=True)
    command = "train" if trainer == "finetune" else "unlearn"
    (run / "manifest.json").write_text(json.dumps({"command": command, "trainer": trainer}))
    (evaluation / "TOFU_SUMMARY.json").write_text(json.dumps(summary))
    fingerprints = {"format": 1, "benchmark": "TOFU", "settings": {"forget_split": split}, "metrics": {}}
    (evaluation / "TOFU_FINGERPRINTS.json").write_text(json.dumps(fingerprints))
    if steps:
        lines = [json.dumps({"step": s, "when": "step", "benchmark": "TOFU", "metrics": m}) for s, m in steps]
        (run / "eval_log.jsonl").write_text("\n".join(lines) + "\n")
    return run


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    return [
        make_run(
            tmp_path,
            "target",
            "finetune",
            {"forget_quality": 1e-5, "model_utility": 0.6, "forget_Q_A_Prob": 0.9},
        ),
        make_run(
            tmp_path,
            "retain",
            "finetune",
            {"forget_quality": 1.0, "model_utility": 0.58, "forget_Q_A_Prob": 0.1},
        ),
        make_run(
            tmp_path,
            "npo",
            "NPO",
            {"forget_quality": 0.2, "model_utility": 0.5, "forget_Q_A_Prob": 0.3, "privleak": -20.0},
            steps=[
                (0, {"forget_Q_A_Prob": 0.9}),
                (5, {"forget_Q_A_Prob": 0.5}),
                (10, {"forget_Q_A_Prob": 0.3}),
            ],
        ),
    ]


def test_compare_prints_one_table_and_writes_csv_json_and_plots(run_unlearn: Any, runs: list[Path]) -> None:
    result = run_unlearn("compare", *map(str, runs))
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()  # piped: tab-separated, header first, nothing cut
    assert lines[0].split("\t") == ["run", "method", "benchmark", "split", *COLUMNS]
    assert lines[3].split("\t") == [
        "npo",
        "NPO",
        "TOFU",
        "forget10",
        "0.2000",
        "0.5000",
        "0.3000",
        "-20.0000",
    ]
    assert lines[1].split("\t")[4] == "1.00e-05" and lines[1].split("\t")[-1] == "—"
    output = runs[0].parent / "comparison"
    with (output / "comparison.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["run", "method", "benchmark", "split", *COLUMNS]
    assert rows[1] == ["target", "finetune", "TOFU", "forget10", "1e-05", "0.6", "0.9", ""]
    assert json.loads((output / "comparison.json").read_text())[2]["privleak"] == -20.0
    for name in ("forget_quality_vs_model_utility.png", "steps_npo.png"):
        assert (output / name).read_bytes().startswith(PNG), name
    assert not (output / "steps_target.png").exists()  # evaluated only at the end


def test_a_terminal_gets_a_titled_table(
    run_unlearn: Any, runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from unlearn_cli.console import console

    monkeypatch.setattr(console, "_force_terminal", True)
    result = run_unlearn("compare", *map(str, runs))
    assert result.code == 0, result.stderr
    assert "Comparison of 3 runs" in result.stdout
    npo_line = next(line for line in result.stdout.splitlines() if line.startswith("│ npo"))
    cells = [c.strip() for c in npo_line.split("│") if c.strip()]
    assert cells == ["npo", "NPO", "TOFU", "forget10", "0.2000", "0.5000", "0.3000", "-20.0000"]


def test_json_output_is_machine_readable(run_unlearn: Any, runs: list[Path], tmp_path: Path) -> None:
    result = run_unlearn("compare", *map(str, runs), "--json", "--output", str(tmp_path / "out"))
    assert result.code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert [row["run"] for row in printed["runs"]] == ["target", "retain", "npo"]
    assert printed["runs"][1] == {
        "run": "retain",
        "method": "finetune",
        "benchmark": "TOFU",
        "split": "forget10",
        "forget_quality": 1.0,
        "model_utility": 0.58,
        "forget_Q_A_Prob": 0.1,
    }
    assert str(tmp_path / "out" / "comparison.csv") in printed["files"]


def test_forget_probability_stands_in_without_forget_quality(tmp_path: Path) -> None:
    from unlearn_cli.pipelines.compare import collect, plot_quality_vs_utility

    run = make_run(
        tmp_path, "a", "NPO", {"forget_quality": None, "model_utility": 0.5, "forget_Q_A_Prob": 0.3}
    )
    path = plot_quality_vs_utility(collect([run]), tmp_path / "plot.png")
    assert path is not None and path.read_bytes().startswith(PNG)
    no_utility = make_run(tmp_path, "b", "NPO", {"forget_Q_A_Prob": 0.3})
    assert plot_quality_vs_utility(collect([no_utility]), tmp_path / "none.png") is None


def test_a_folder_without_evaluation_is_a_user_error(run_unlearn: Any, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_unlearn("compare", str(tmp_path / "empty"))
    assert result.code == 2
    assert "holds no evaluation" in result.stderr and "unlearn eval" in result.stderr


def test_an_output_folder_with_other_files_is_refused(
    run_unlearn: Any, runs: list[Path], tmp_path: Path
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = run_unlearn("compare", *map(str, runs), "--output", str(tmp_path / "mine"))
    assert result.code == 2 and "notes.txt" in result.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_runs_with_the_same_folder_name_are_told_apart(tmp_path: Path) -> None:
    from unlearn_cli.pipelines.compare import run_names

    a, b = tmp_path / "x" / "run", tmp_path / "y" / "run"
    assert run_names([a, b]) == {a: "x/run", b: "y/run"}


def test_a_run_with_two_benchmarks_during_training_gets_a_plot_for_each(
    run_unlearn: Any, tmp_path: Path
) -> None:
    run = make_run(tmp_path, "npo", "NPO", {"forget_Q_A_Prob": 0.3}, steps=[(0, {"a": 1.0}), (5, {"a": 0.5})])
    (run / "eval" / "MUSE_SUMMARY.json").write_text(json.dumps({"privleak": -3.0}))
    muse_steps = [
        {"step": s, "when": "step", "benchmark": "MUSE", "metrics": {"privleak": v}}
        for s, v in ((0, -9.0), (5, -3.0))
    ]
    with (run / "eval_log.jsonl").open("a") as log:
        log.write("".join(json.dumps(line) + "\n" for line in muse_steps))
    result = run_unlearn("compare", str(run), "--output", str(tmp_path / "cmp"))
    assert result.code == 0, result.stderr
    for name in ("steps_npo_TOFU.png", "steps_npo_MUSE.png"):
        assert (tmp_path / "cmp" / name).read_bytes().startswith(PNG), name
