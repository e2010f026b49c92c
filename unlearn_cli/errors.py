"""User-facing errors.

Every mistake a user can make (a typo in a recipe, a wrong type, a missing file, an unknown name, empty data)
ends in one `UserError`. The CLI prints it as one clear message and exits with code 2, without a traceback,
so the message must carry everything a user needs: where (file and key path), what is wrong, how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

USER_ERROR_EXIT_CODE = 2
RUN_FAILED_EXIT_CODE = 1


class UserError(Exception):
    """A mistake the user can fix: shown as one message, exit code 2.

    `notes` are lines printed after the message (what was kept, what happened to an earlier run).
    """

    exit_code = USER_ERROR_EXIT_CODE

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        key: str | None = None,
        hint: str | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.key = key
        self.hint = hint
        self.notes: list[str] = list(notes or [])
        super().__init__(self.render())

    def render(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.key:
            where.append(f"key '{self.key}'")
        text = f"{': '.join(where)}: {self.problem}" if where else self.problem
        if self.hint:
            text += f"\n  hint: {self.hint}"
        for note in self.notes:
            text += f"\n  note: {note}"
        return text

    def __str__(self) -> str:
        return self.render()

    def located(self, *, file: str | None = None, key: str | None = None) -> UserError:
        """Return the same error with a file or key path filled in where it was missing."""
        return type(self)(
            self.problem, file=self.file or file, key=self.key or key, hint=self.hint, notes=self.notes
        )

    def under(self, prefix: str, *, file: str | None = None) -> UserError:
        """The same error with a component-relative key put under `prefix` (`prefix.key`)."""
        key = f"{prefix}.{self.key}" if self.key else prefix
        return type(self)(self.problem, file=self.file or file, key=key, hint=self.hint, notes=self.notes)


class UnlearnWarning(UserWarning):
    """A warning the CLI prints as one `warning: ...` line (not Python's file:line format)."""


class RunFailed(UserError):
    """A valid run that could not finish (out of memory, a diverging loss): one message, exit code 1."""

    exit_code = RUN_FAILED_EXIT_CODE


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The registered names closest to a misspelt one, case-insensitively, best first.

    Only names nearly as close as the best match are kept, so a clear typo gets one suggestion.
    """
    lowered = {c.lower(): c for c in candidates}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    if not matches:
        return []
    best = difflib.SequenceMatcher(None, name.lower(), matches[0]).ratio()
    return [
        lowered[m] for m in matches if difflib.SequenceMatcher(None, name.lower(), m).ratio() >= best - 0.15
    ]


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean ...?' hint, or None when nothing is close."""
    matches = closest(name, candidates)
    if not matches:
        return None
    return "did you mean " + " or ".join(f"'{m}'" for m in matches) + "?"
