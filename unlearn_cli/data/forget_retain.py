"""The training set of an unlearning run: each forget item paired with a retain item (or the reverse)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from torch.utils.data import Dataset, Subset

from unlearn_cli.errors import UserError
from unlearn_cli.registry import register

Anchor = Literal["forget", "retain"]


@register("dataset")
class ForgetRetainDataset(Dataset):
    """Pairs every item of the anchor split with a seeded random item of the other split.

    Built by the container from `[data.forget.*]` and `[data.retain.*]` (each split's datasets concatenated in
    recipe order) and `[data] anchor` ("forget" by default): its length is the anchor split's, and item `i`
    is ``{"forget": ..., "retain": ...}``. The partner of item `i` in epoch `e` is drawn from
    ``numpy.random.default_rng([seed, e])``, so it is the same in every run, every dataloader worker and
    after a resume, and differs between epochs so that the whole other split is seen over a run.
    Without a retain split, items are ``{"forget": ...}``.
    """

    def __init__(self, forget: Any, retain: Any = None, anchor: Anchor = "forget", seed: int = 0) -> None:
        if anchor not in ("forget", "retain"):
            raise UserError(f"anchor must be 'forget' or 'retain', got {anchor!r}", key="anchor")
        if anchor == "retain" and retain is None:
            raise UserError(
                "anchor is 'retain' but the recipe has no retain data",
                key="anchor",
                hint='add [data.retain.NAME], or set anchor = "forget"',
            )
        self.forget = forget
        self.retain = retain
        self.anchor = anchor
        self.seed = seed
        self.epoch = 0
        self._partners: np.ndarray | None = None
        self._partners_epoch = -1

    @property
    def _anchored(self) -> Any:
        return self.forget if self.anchor == "forget" else self.retain

    @property
    def _other(self) -> Any:
        return self.retain if self.anchor == "forget" else self.forget

    def set_epoch(self, epoch: int) -> None:
        """Choose the pairing of this epoch (the trainer calls it at every epoch start)."""
        self.epoch = int(epoch)

    def partners(self) -> np.ndarray:
        """Index into the other split of each anchor item's partner in the current epoch."""
        if self._partners is None or self._partners_epoch != self.epoch:
            rng = np.random.default_rng([self.seed, self.epoch])
            self._partners = rng.integers(0, len(self._other), size=len(self._anchored))
            self._partners_epoch = self.epoch
        return self._partners

    def paired_retain(self) -> Any:
        """The retain item of every pair of the current epoch, in pair order (twice if paired twice)."""
        if self.retain is None or self.anchor == "retain":
            return self.retain
        return Subset(self.retain, self.partners().tolist())

    def __len__(self) -> int:
        return len(self._anchored)

    def __getitem__(self, index: int) -> dict[str, Any]:
        anchored = self._anchored[index]
        if self._other is None:
            return {self.anchor: anchored}
        other = self._other[int(self.partners()[index])]
        other_name = "retain" if self.anchor == "forget" else "forget"
        return {self.anchor: anchored, other_name: other}

    def lengths(self) -> list[int] | None:
        """Token length of each anchor item (what length-grouped batching sorts by), when stored."""
        from unlearn_cli.data.base import dataset_lengths

        return dataset_lengths(self._anchored)
