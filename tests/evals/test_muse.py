"""The MUSE suite offline: a tiny corpus in the layout of the Hub dataset (configs knowmem, verbmem, privleak,
declared by a README like the dataset card), written here and read as a local snapshot folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from unlearn_cli.evals import stats
from unlearn_cli.evals.muse import KNOWMEM_STOPS, MUSE

NEWS = [
    "The harbour council of Brightwater voted on Tuesday to rebuild the old stone pier before winter.",
    "A storm closed the northern ferry route for three days, stranding forty travellers on the island.",
    "The city library opened a new wing for rare maps donated by a retired sea captain.",
    "Farmers in the valley reported the largest apple harvest in twenty years this autumn.",
]
OTHER_NEWS = [
    "A small bakery in the market square won a national prize for its rye bread.",
    "The mountain railway will run a night train for stargazers during the summer months.",
    "Volunteers planted two thousand trees along the river bank over the weekend.",
    "The town orchestra announced a free concert in the park to celebrate its centenary.",
]
QUESTIONS = [
    {"question": "What did the harbour council vote to rebuild?", "answer": "the old stone pier"},
    {"question": "How many travellers were stranded on the island?", "answer": "forty"},
]
ICL = [{"question": "What did the library open?", "answer": "a new wing for rare maps"}]


def prefix(text: str) -> str:
    """The first six words (MUSE's verbatim prompts end on a word; a space joins the continuation)."""
    return " ".join(text.split()[:6])


def write_snapshot(folder: Path) -> Path:
    """Files and a dataset card in the layout of muse-bench/MUSE-News."""
    splits = {
        ("knowmem", "forget_qa"): QUESTIONS,
        ("knowmem", "forget_qa_icl"): ICL,
        ("knowmem", "retain_qa"): QUESTIONS[::-1],
        ("knowmem", "retain_qa_icl"): ICL,
        ("verbmem", "forget"): [
            {"prompt": prefix(text), "gt": text[len(prefix(text)) + 1 :]} for text in NEWS
        ],
        ("privleak", "forget"): [{"text": text} for text in NEWS],
        ("privleak", "holdout"): [{"text": text} for text in OTHER_NEWS],
    }
    card = ["---", "configs:"]
    for config in ("knowmem", "verbmem", "privleak"):
        card += [f"- config_name: {config}", "  data_files:"]
        for (name, split), rows in splits.items():
            if name != config:
                continue
            path = folder / config / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
            card += [f"  - split: {split}", f"    path: {config}/{split}.jsonl"]
    (folder / "README.md").write_text("\n".join([*card, "---", ""]), encoding="utf-8")
    return folder


@pytest.fixture
def muse(tiny_tokenizer: Any, tmp_path: Path) -> MUSE:
    return MUSE(
        tiny_tokenizer,
        muse_path=str(write_snapshot(tmp_path / "MUSE-News")),
        metrics=["forget_knowmem_ROUGE", "retain_knowmem_ROUGE", "forget_verbmem_ROUGE", "privleak",
                 "extraction_strength", "exact_memorization"],
        knowmem_max_new_tokens=8,
        verbmem_max_new_tokens=8,
    )  # fmt: skip


def test_the_muse_suite_runs_on_a_local_snapshot(muse: MUSE, tiny_model: Any, tmp_path: Path) -> None:
    evaluation = muse.evaluate(tiny_model, output_dir=tmp_path / "eval")
    logs = json.loads((tmp_path / "eval" / "MUSE_EVAL.json").read_text())
    summary = json.loads((tmp_path / "eval" / "MUSE_SUMMARY.json").read_text())
    assert summary == evaluation.summary and list(summary) == muse.requested
    assert set(logs) == {*muse.requested, "mia_min_k"}
    assert len(logs["forget_verbmem_ROUGE"]["value_by_index"]) == 4
    assert len(logs["forget_knowmem_ROUGE"]["value_by_index"]) == 2
    auc = logs["mia_min_k"]["agg_value"]
    assert summary["privleak"] == pytest.approx(stats.privleak(auc, 0.5))  # no retain logs: AUC 0.5
    for value in logs["forget_knowmem_ROUGE"]["value_by_index"].values():
        assert not any(stop in value["generation"] for stop in KNOWMEM_STOPS)
        assert value["input"].count("What did the library open?") == 1  # the few-shot example
    for name in ("forget_verbmem_ROUGE", "extraction_strength", "exact_memorization"):
        assert 0.0 <= summary[name] <= 1.0


def test_verbatim_prompts_are_the_texts_prefixes(muse: MUSE, tiny_tokenizer: Any) -> None:
    prompts = muse.dataset("forget_verbmem_gen")
    first = prompts[0]
    assert tiny_tokenizer.decode(first["input_ids"], skip_special_tokens=True) == prefix(NEWS[0])
    continuation = tiny_tokenizer.decode(first["labels"], skip_special_tokens=True)
    assert continuation == " " + NEWS[0][len(prefix(NEWS[0])) + 1 :]
    assert muse.dataset("mia_forget")[0]["labels"][-1] != tiny_tokenizer.eos_token_id  # MUSE texts end bare


def test_the_corpus_picks_the_hub_path(tiny_tokenizer: Any) -> None:
    books = MUSE(tiny_tokenizer, muse_corpus="Books", metrics=["privleak"])
    assert books.settings["muse_path"] == "muse-bench/MUSE-Books"
    assert books.data_specs["mia_forget"].args["hf_args"] == {
        "path": "muse-bench/MUSE-Books",
        "name": "privleak",
        "split": "forget",
    }


def test_a_generation_length_below_one_names_its_argument(tiny_tokenizer: Any) -> None:
    from unlearn_cli.errors import UserError

    with pytest.raises(UserError, match="verbmem_max_new_tokens must be at least 1, got 0") as caught:
        MUSE(tiny_tokenizer, metrics=["privleak"], verbmem_max_new_tokens=0)
    assert caught.value.key == "verbmem_max_new_tokens"
