"""NPO training only a LoRA adapter (the packaged quickstart/unlearn_lora recipe, with gradient checkpointing)
forgets like full NPO, its reference being the same model with the adapter disabled."""

from __future__ import annotations

import pytest

from tests.unlearning.conftest import Unlearn, forget_rise, retain_rise

pytestmark = pytest.mark.slow


def test_npo_with_a_lora_adapter_forgets_and_keeps_the_retain_set(unlearn: Unlearn) -> None:
    """Per-step reference forwards, through the trained model with its adapter switched off."""
    manifest = unlearn(
        "NPO", 'trainer.method_args.ref_log_probs="per_step"', recipe="quickstart/unlearn_lora"
    )
    assert (
        manifest["launch"]["peft"]["trainable_parameters"]
        < manifest["launch"]["peft"]["total_parameters"] / 10
    )
    assert forget_rise(manifest) > 2.0, manifest
    assert retain_rise(manifest) < 0.3 * forget_rise(manifest), manifest
