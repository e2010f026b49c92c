"""Alternate preference optimisation, AltPO (Mekala et al., 2024, "Alternate Preference Optimization for
Unlearning Factual Knowledge in Large Language Models", arXiv:2409.13474).

Negative feedback alone (gradient ascent, NPO) pushes forget answers down and leaves the model saying
nonsense; AltPO adds in-domain positive feedback: for each forget question it prefers a plausible *alternate*
answer over the true one, with a DPO loss against the initial model, plus a retain term:

    γ · −(2/β) · mean log σ(β·[(log π(ỹ|x) − log π_ref(ỹ|x)) − (log π(y|x) − log π_ref(y|x))]) + α · retain

where y is the forget answer and ỹ an alternate (one pair per alternate when a question has several).
Alternates come from the data (`QAwithAlternateDataset`, e.g. TOFU's `perturbed_answer`) or are generated
once by the model before training (`QAwithGeneratedAlternateDataset`, cached on disk), as the paper does.

Reference log-probabilities of both answers are computed once before training by default
(`ref_log_probs = "cached"`, exact, no second model in memory); "per_step" keeps a frozen reference model.
The reference framework runs AltPO as its DPO trainer over a file of generated alternates, and so does this
toolkit: `AltPO` is `DPO` (same loss, 2/β scale of the authors' code, same defaults `beta=0.1, alpha=1,
gamma=1`, NLL retain) under the name its recipes and papers use; what makes it AltPO is its data.
"""

from __future__ import annotations

from unlearn_cli.registry import register
from unlearn_cli.trainers.dpo import DPO


@register("trainer", "AltPO")
class AltPO(DPO):
    """Prefer plausible alternate answers over the forget answers (DPO against the initial model) + retain."""
