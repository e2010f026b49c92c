"""`unlearn eval` end to end on the session's fine-tuned tiny model and an NPO-unlearned copy of it.

Shows that the TOFU metrics see the forgetting (forget probability falls, retain stays close), that earlier
results are reused only for the identical model and settings, that two processes give exactly the numbers
of one, and that `unlearn` evaluates during training and leaves results a later `eval` reuses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unlearning.conftest import AUTHORS, UNLEARN

pytestmark = pytest.mark.slow

METRICS = [
    "forget_Q_A_Prob",
    "retain_Q_A_Prob",
    "forget_truth_ratio",
    "forget_quality",
    "forget_Q_A_ROUGE",
    "extraction_strength",
    "privleak",
]


def eval_overrides(model: Path, output_dir: Path, *extra: str, metrics: list[str] = METRICS) -> list[str]:
    return [
        f"model_path={model}",
        f'tofu_path="{AUTHORS}"',
        f"metrics={json.dumps(metrics)}",
        f"run.output_dir={output_dir}",
        *extra,
    ]


def evaluate(model: Path, output_dir: Path, *extra: str, overwrite: bool = False) -> Any:
    from unlearn_cli.pipelines.evaluate import run_evaluation

    return run_evaluation("quickstart/eval", eval_overrides(model, output_dir, *extra), overwrite=overwrite)[
        "TOFU"
    ]


@pytest.fixture(scope="module")
def unlearned(finetuned_authors: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from unlearn_cli.pipelines.run import run_unlearning

    output_dir = tmp_path_factory.mktemp("npo") / "run"
    run_unlearning(
        "quickstart/unlearn",
        [
            f"finetuned_model={finetuned_authors}",
            *UNLEARN,
            "trainer.args.learning_rate=1e-3",
            "trainer.args.num_train_epochs=2",  # 4 steps: forgets without wrecking the rest of the tiny model
            f"run.output_dir={output_dir}",
        ],
        overwrite=False,
    )
    return output_dir


@pytest.fixture(scope="module")
def evaluated(finetuned_authors: Path, unlearned: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The fine-tune evaluated, then the unlearned model with the fine-tune's logs as "retain" logs."""
    root = tmp_path_factory.mktemp("evals")
    before = evaluate(finetuned_authors, root / "finetuned")
    after = evaluate(unlearned, root / "npo", f"retain_logs_path={root / 'finetuned' / 'TOFU_EVAL.json'}")
    return {"root": root, "before": before, "after": after}


def test_forget_probability_falls_while_retain_stays_close(evaluated: dict) -> None:
    before, after = evaluated["before"].summary, evaluated["after"].summary
    assert before["forget_Q_A_Prob"] > 0.7, before  # the fine-tune knows its answers
    forget_drop = before["forget_Q_A_Prob"] - after["forget_Q_A_Prob"]
    retain_drop = before["retain_Q_A_Prob"] - after["retain_Q_A_Prob"]
    assert after["forget_Q_A_Prob"] < 0.5 * before["forget_Q_A_Prob"], (before, after)
    assert after["retain_Q_A_Prob"] > 0.75 and retain_drop < 0.5 * forget_drop, (before, after)
    assert after["forget_Q_A_ROUGE"] < before["forget_Q_A_ROUGE"]
    assert before["privleak"] == pytest.approx(-100.0)  # the fine-tune leaks every forget item (AUC 1)


def test_files_have_the_reference_frameworks_layout(evaluated: dict) -> None:
    folder = evaluated["root"] / "npo"
    logs = json.loads((folder / "TOFU_EVAL.json").read_text())
    summary = json.loads((folder / "TOFU_SUMMARY.json").read_text())
    assert list(summary) == METRICS
    # dependencies are kept too, as in the reference framework's logs
    assert {"forget_Q_A_PARA_Prob", "forget_Q_A_PERT_Prob", "mia_min_k"} <= set(logs)
    assert logs["forget_Q_A_Prob"]["value_by_index"]["90"].keys() == {"prob", "avg_loss"}
    assert len(logs["forget_Q_A_PERT_Prob"]["value_by_index"]["90"]["prob"]) == 3
    assert set(logs["mia_min_k"]) == {"agg_value", "auc", "forget", "holdout"}
    generation = logs["forget_Q_A_ROUGE"]["value_by_index"]["90"]
    assert {"rougeL_recall", "rouge1_recall", "rougeL_f1", "input", "ground_truth", "generation"} <= set(
        generation
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["command"] == "eval" and manifest["benchmarks"]["TOFU"]["summary"] == summary


def test_forget_quality_reads_another_models_logs(evaluated: dict) -> None:
    from scipy.stats import ks_2samp

    root = evaluated["root"]
    theirs = json.loads((root / "finetuned" / "TOFU_EVAL.json").read_text())["forget_truth_ratio"]
    ours = json.loads((root / "npo" / "TOFU_EVAL.json").read_text())["forget_truth_ratio"]
    expected = ks_2samp(
        [v["score"] for v in ours["value_by_index"].values()],
        [v["score"] for v in theirs["value_by_index"].values()],
    ).pvalue
    assert evaluated["after"].summary["forget_quality"] == pytest.approx(expected)
    assert evaluated["before"].summary["forget_quality"] is None  # no retain logs given


def test_identical_results_are_reused_and_nothing_else(
    evaluated: dict, finetuned_authors: Path, unlearned: Path
) -> None:
    root = evaluated["root"]
    again = evaluate(finetuned_authors, root / "finetuned")
    assert again.reused == set(again.results)
    assert again.summary == evaluated["before"].summary
    recomputed = evaluate(finetuned_authors, root / "finetuned", overwrite=True)
    assert recomputed.reused == set()
    assert recomputed.summary == evaluated["before"].summary
    # another model in the same folder: its fingerprint differs, so nothing is taken from the earlier run
    shutil.copytree(root / "finetuned", root / "mixed")
    other = evaluate(unlearned, root / "mixed")
    assert other.reused == set()
    assert other.summary["forget_Q_A_Prob"] == pytest.approx(evaluated["after"].summary["forget_Q_A_Prob"])
    # a metric's settings change: only what depends on them is recomputed
    shorter = evaluate(unlearned, root / "mixed", "eval.TOFU.args.max_new_tokens=5")
    assert shorter.reused == set(shorter.results) - {"forget_Q_A_ROUGE"}


def test_two_processes_give_exactly_the_numbers_of_one(evaluated: dict, finetuned_authors: Path) -> None:
    output_dir = evaluated["root"] / "two-ranks"
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "unlearn_cli.cli", "eval", "quickstart/eval",
        *eval_overrides(finetuned_authors, output_dir),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("Evaluation: quickstart-eval") == 1  # rank 0 reports
    one = json.loads((evaluated["root"] / "finetuned" / "TOFU_EVAL.json").read_text())
    two = json.loads((output_dir / "TOFU_EVAL.json").read_text())
    assert two == one


def test_unlearning_evaluates_during_training_and_eval_reuses_the_final_results(
    unlearn: Any, tmp_path: Path
) -> None:
    metrics = ["forget_Q_A_Prob", "retain_Q_A_Prob"]
    manifest = unlearn(
        "NPO",
        "trainer.args.learning_rate=1e-3",
        "trainer.args.num_train_epochs=2",
        "trainer.args.eval_strategy=steps",
        "trainer.args.eval_steps=2",
        "eval.TOFU.handler=TOFU",
        f'eval.TOFU.args.tofu_path="{AUTHORS}"',
        f"eval.TOFU.args.metrics={json.dumps(metrics)}",
    )
    run_dir = tmp_path / "unlearn-NPO"
    log = [json.loads(line) for line in (run_dir / "eval_log.jsonl").read_text().splitlines()]
    assert [entry["when"] for entry in log] == ["start", "step", "step", "end"]  # 4 steps: 0, 2, 4, end
    assert [entry["step"] for entry in log] == [0, 2, 4, 4]
    assert log[-1]["metrics"]["forget_Q_A_Prob"] < log[0]["metrics"]["forget_Q_A_Prob"]
    assert manifest["evaluation"]["TOFU"] == log[-1]["metrics"]
    final = json.loads((run_dir / "eval" / "TOFU_SUMMARY.json").read_text())
    assert final == log[-1]["metrics"]
    later = evaluate(run_dir, run_dir / "eval", f"metrics={json.dumps(metrics)}")
    assert later.reused == set(later.results)


def test_a_training_run_folder_is_never_used_for_evaluation(
    finetuned_authors: Path, run_unlearn: Any
) -> None:
    result = run_unlearn("eval", "quickstart/eval", *eval_overrides(finetuned_authors, finetuned_authors))
    assert result.code == 2
    assert "is the folder of an `unlearn train` run" in result.stderr and "Traceback" not in result.stderr


def test_compare_tells_the_evaluated_models_apart(evaluated: dict) -> None:
    from unlearn_cli.pipelines.compare import run_comparison

    root = evaluated["root"]
    result = run_comparison(
        [str(root / "finetuned"), str(root / "npo")], as_json=True, output=str(root / "cmp")
    )
    rows = {row["run"]: row for row in result["runs"]}
    assert (
        rows["finetuned"]["method"] == "finetune" and rows["npo"]["method"] == "NPO"
    )  # from the models' runs
    assert rows["npo"]["split"] == "forget10"
    assert rows["npo"]["forget_Q_A_Prob"] == evaluated["after"].summary["forget_Q_A_Prob"]
