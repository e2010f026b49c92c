"""`unlearn eval` mistakes end in one clear message before any weights load; the traps of the reference
framework (a one-token answer in the gradient-norm attack, a CUDA-only device map) are handled."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.evals.test_metrics import inputs
from unlearn_cli.evals import metrics


def test_an_unknown_metric_names_the_recipe_key_and_the_closest_name(
    run_unlearn: Any, tmp_path: Path
) -> None:
    result = run_unlearn(
        "eval", "quickstart/eval", 'metrics=["forget_truth_ration"]', f"run.output_dir={tmp_path}"
    )
    assert result.code == 2
    assert "key 'eval.TOFU.args.metrics'" in result.stderr
    assert "did you mean 'forget_truth_ratio'" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_benchmark_is_refused_at_validation(run_unlearn: Any) -> None:
    result = run_unlearn("recipe", "validate", "quickstart/eval", "eval.TOFU.handler=TOFUU")
    assert result.code == 2
    assert "unknown benchmark handler 'TOFUU'" in result.stderr and "did you mean 'TOFU'" in result.stderr


def test_a_wrong_argument_type_is_refused_at_validation(run_unlearn: Any) -> None:
    result = run_unlearn("recipe", "validate", "quickstart/eval", 'forget_split="forget20"')
    assert result.code == 2
    assert "key 'eval.TOFU.args.forget_split'" in result.stderr


def test_eval_needs_an_eval_section(run_unlearn: Any, tmp_path: Path) -> None:
    result = run_unlearn("eval", "quickstart/finetune", f"run.output_dir={tmp_path}")
    assert result.code == 2 and "`unlearn eval` needs [eval]" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_a_cuda_device_map_without_cuda_is_a_user_error(run_unlearn: Any, tmp_path: Path) -> None:
    result = run_unlearn(
        "eval",
        "quickstart/eval",
        "model_path=builtin://tiny-llama",
        'model.model_args.device_map="cuda"',
        f"run.output_dir={tmp_path / 'x'}",
    )
    assert result.code == 2
    assert "key 'model.model_args.device_map'" in result.stderr and "needs a CUDA GPU" in result.stderr


def test_someone_elses_results_are_never_overwritten(run_unlearn: Any, tmp_path: Path) -> None:
    (tmp_path / "TOFU_EVAL.json").write_text("{}")
    result = run_unlearn(
        "eval",
        "quickstart/eval",
        "model_path=builtin://tiny-llama",
        f"run.output_dir={tmp_path}",
        "--overwrite",
    )
    assert result.code == 2
    assert "was not written by unlearn-cli" in result.stderr
    assert (tmp_path / "TOFU_EVAL.json").read_text() == "{}"


def _eos_only(tokenizer: Any, index: int) -> dict[str, torch.Tensor]:
    ids = torch.tensor([tokenizer.bos_token_id, 100 + index, 200 + index, tokenizer.eos_token_id])
    labels = torch.full_like(ids, -100)
    labels[-1] = tokenizer.eos_token_id
    return {"input_ids": ids, "labels": labels, "index": torch.tensor(index)}


def test_gradient_norm_scores_an_answer_of_one_token_and_leaves_no_gradient(
    tiny_model: Any, tiny_tokenizer: Any
) -> None:
    # the reference framework drops the eos and averages an empty set of tokens here (NaN, then a crash)
    norm = metrics._gradient_norm(tiny_model, _eos_only(tiny_tokenizer, 0), 2, tiny_tokenizer.eos_token_id)
    assert math.isfinite(norm) and norm > 0
    assert all(parameter.grad is None for parameter in tiny_model.parameters())
    metric_inputs = inputs(
        {"forget": [_eos_only(tiny_tokenizer, 0)], "holdout": [_eos_only(tiny_tokenizer, 1)]}
    )
    metric_inputs.model = tiny_model
    metric_inputs.tokenizer = tiny_tokenizer
    result = metrics.mia_gradnorm(metric_inputs, p=2)
    assert result["agg_value"] in (0.0, 1.0)  # one item per side: the AUC is decided
    assert all(parameter.grad is None for parameter in tiny_model.parameters())


@pytest.mark.parametrize("folder_existed", [False, True])
def test_an_interrupted_evaluation_says_what_it_kept_and_leaves_the_folder_as_it_was(
    run_unlearn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder_existed: bool
) -> None:
    import os
    import signal

    from unlearn_cli.pipelines import evaluate

    def interrupted_while_loading(model: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)  # the toolkit's handler raises at the next bytecode
        return model

    monkeypatch.setattr(evaluate, "place_for_evaluation", interrupted_while_loading)
    output_dir = tmp_path / "eval"
    if folder_existed:
        output_dir.mkdir()
    result = run_unlearn(
        "eval", "quickstart/eval", "model_path=builtin://tiny-llama", f"run.output_dir={output_dir}"
    )
    assert result.code == 130
    assert "interrupted (SIGINT received during setup): nothing was written" in result.stderr
    assert "Traceback" not in result.stderr
    assert output_dir.is_dir() == folder_existed and not (folder_existed and any(output_dir.iterdir()))


def test_the_weights_are_hashed_once_for_all_benchmarks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.evals.conftest import SMALL_AUTHORS
    from tests.evals.test_muse import write_snapshot
    from unlearn_cli.evals import engine
    from unlearn_cli.pipelines.evaluate import run_evaluation

    hashed: list[Any] = []
    weights_digest = engine.weights_digest

    def counted(model: Any) -> str:
        hashed.append(model)
        return weights_digest(model)

    monkeypatch.setattr(engine, "weights_digest", counted)
    evaluations = run_evaluation(
        "quickstart/eval",
        [
            "model_path=builtin://tiny-llama",
            f'tofu_path="{SMALL_AUTHORS}"',
            'metrics=["forget_Q_A_Prob"]',
            'eval.MUSE.handler="MUSE"',
            f'eval.MUSE.args.muse_path="{write_snapshot(tmp_path / "MUSE-News")}"',
            'eval.MUSE.args.metrics=["exact_memorization"]',
            f"run.output_dir={tmp_path / 'eval'}",
        ],
    )
    assert sorted(evaluations) == ["MUSE", "TOFU"] and len(hashed) == 1
    assert all((tmp_path / "eval" / f"{name}_FINGERPRINTS.json").is_file() for name in evaluations)


def test_a_manifest_json_of_someone_else_is_never_replaced(run_unlearn: Any, tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"command": "eval"}')
    (tmp_path / "TOFU_FINGERPRINTS.json").write_text("{}")
    result = run_unlearn(
        "eval", "quickstart/eval", "model_path=builtin://tiny-llama", f"run.output_dir={tmp_path}"
    )
    assert result.code == 2
    assert "manifest.json was not written by unlearn-cli" in result.stderr
    assert (tmp_path / "manifest.json").read_text() == '{"command": "eval"}'
