"""Each method makes the fine-tuned tiny model forget: forget NLL rises clearly, retain NLL much less.

The thresholds are loose on purpose (several-fold margins): they separate "forgot" from "did nothing" and
"kept the retain set" from "destroyed the model", not one good run from another.
"""

from __future__ import annotations

import pytest

from tests.unlearning.conftest import Unlearn, forget_rise, retain_rise

pytestmark = pytest.mark.slow


def test_gradient_ascent_forgets(unlearn: Unlearn) -> None:
    manifest = unlearn("GradAscent", "trainer.args.learning_rate=1e-3", "trainer.args.num_train_epochs=5")
    assert forget_rise(manifest) > 2.0, manifest


def test_gradient_difference_forgets_and_keeps_the_retain_set(unlearn: Unlearn) -> None:
    # 4 epochs: at 5, gradient ascent's unbounded term has run away (forget NLL +9) and dragged retain along
    manifest = unlearn("GradDiff", "trainer.args.learning_rate=1e-3", "trainer.args.num_train_epochs=4")
    assert forget_rise(manifest) > 2.0, manifest
    assert retain_rise(manifest) < 0.3 * forget_rise(manifest), manifest


def test_npo_forgets_and_keeps_the_retain_set(unlearn: Unlearn) -> None:
    manifest = unlearn("NPO", "trainer.args.learning_rate=1e-3", "trainer.args.num_train_epochs=5")
    assert forget_rise(manifest) > 2.0, manifest
    assert retain_rise(manifest) < 0.3 * forget_rise(manifest), manifest
