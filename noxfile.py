"""Developer sessions: `nox -s tests lint typecheck quickstart bench`.

torch is pinned to the CPU-friendly 2.13.0 so a fresh machine never pulls a multi-GB CUDA build; on a GPU
machine install your own torch first and run with `nox --no-install` or plain pytest.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"


def _install(session: nox.Session) -> None:
    session.install(TORCH, "-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (unit, end-to-end CLI on tiny models, behavioural)."""
    _install(session)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff>=0.17,<0.18")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on the package."""
    _install(session)
    session.run("mypy", "unlearn_cli")


@nox.session
def quickstart(session: nox.Session) -> None:
    """The README's main job on the embedded offline default, into a temporary folder."""
    _install(session)
    output = session.create_tmp()
    session.run("unlearn", "quickstart", "--output", f"{output}/quickstart", "--overwrite")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (printed ratios against a baseline measured in the same run; never assertions)."""
    _install(session)
    session.run("python", "benchmarks/data_pipeline.py", *session.posargs)
    session.run("python", "benchmarks/reference.py")
    session.run("python", "benchmarks/evaluation.py")
    session.run("python", "benchmarks/memory.py")
