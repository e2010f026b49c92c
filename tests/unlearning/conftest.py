"""What the unlearning tests share: one tiny model fine-tuned on the synthetic authors per test session, and a
function that unlearns from it with any method through the real `unlearn unlearn` pipeline.

The fine-tune memorises 100 answers (10 authors × 10 facts); `forget10` is one author (10 answers) and
`retain90` the other nine. A method has forgotten when the mean answer NLL on the forget set rises by a clear
margin; a method with a retain term must keep the retain NLL well below that rise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

AUTHORS = "builtin://fictitious-authors?authors=10&facts=10"

FINETUNE = [
    f'data.train.authors_full.args.hf_args.path="{AUTHORS}"',
    "trainer.args.num_train_epochs=20",
    "trainer.args.per_device_train_batch_size=10",
    "trainer.args.logging_steps=50",
    "run.measure_answer_nll=true",
]

UNLEARN = [
    f'data.forget.authors_forget.args.hf_args.path="{AUTHORS}"',
    f'data.retain.authors_retain.args.hf_args.path="{AUTHORS}"',
    'forget_split="forget10"',
    'retain_split="retain90"',
    "trainer.args.logging_steps=1",
    "trainer.args.per_device_train_batch_size=5",
]

Unlearn = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def finetuned_authors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model fine-tuned until it recites the 100 synthetic answers (once per session, ~10 s)."""
    from unlearn_cli.pipelines.run import run_training

    output_dir = tmp_path_factory.mktemp("finetuned") / "authors"
    overrides = [*FINETUNE, f"run.output_dir={output_dir}"]
    manifest = run_training("quickstart/finetune", overrides, overwrite=False)
    assert manifest["answer_nll_after"] < 0.3, manifest  # memorised: what is forgotten below was known
    return output_dir


@pytest.fixture
def unlearn(finetuned_authors: Path, tmp_path: Path) -> Unlearn:
    """`unlearn(handler, *overrides)`: unlearn the session's fine-tune with `trainer.handler=handler` (its
    default method_args unless overrides set them) through the real pipeline (`quickstart/unlearn` plus
    overrides); returns the run manifest (forget/retain NLL before and after)."""
    from unlearn_cli.pipelines.run import run_unlearning

    def run(handler: str, *overrides: str, recipe: str = "quickstart/unlearn") -> dict[str, Any]:
        output_dir = tmp_path / f"unlearn-{handler}"
        return run_unlearning(
            recipe,
            [
                f"finetuned_model={finetuned_authors}",
                *UNLEARN,
                f"trainer.handler={handler}",
                "~trainer.method_args",  # the recipe's are NPO's; each test gives the method's own
                f"run.output_dir={output_dir}",
                *overrides,
            ],
            overwrite=False,
        )

    return run


def forget_rise(manifest: dict[str, Any]) -> float:
    return manifest["forget_nll_after"] - manifest["forget_nll_before"]


def retain_rise(manifest: dict[str, Any]) -> float:
    return manifest["retain_nll_after"] - manifest["retain_nll_before"]
