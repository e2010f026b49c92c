"""`unlearn compare`: one table of the evaluation summaries of many runs, as CSV and plots.

For each run folder it reads the evaluations found in it or in its `eval/` subfolder (`<NAME>_SUMMARY.json`,
with the benchmark's settings from `<NAME>_FINGERPRINTS.json`), what produced the model (the run's
`manifest.json`: trainer and method, or, for an evaluation folder, the evaluated model's run), and the
evaluations made during training (`eval_log.jsonl`). It writes `comparison.csv` and `comparison.json`,
`forget_quality_vs_model_utility.png` (TOFU's standard picture: one point per run) and, for each run
evaluated during training, `steps_<run>.png` (its metrics across the evaluation steps).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearn_cli.cli.common import print_rows
from unlearn_cli.console import console
from unlearn_cli.errors import UserError
from unlearn_cli.evals.report import format_value
from unlearn_cli.run_folder import EVAL_FOLDER, EVAL_LOG

LEADING_METRICS = (
    "forget_quality",
    "model_utility",
    "forget_Q_A_Prob",
    "forget_truth_ratio",
    "forget_Q_A_ROUGE",
    "privleak",
    "extraction_strength",
    "forget_knowmem_ROUGE",
    "retain_knowmem_ROUGE",
    "forget_verbmem_ROUGE",
)
"""Columns shown first, in this order; any other metric follows alphabetically."""

OUTPUT_FILES = ("comparison.csv", "comparison.json", "forget_quality_vs_model_utility.png")


@dataclass
class RunSummary:
    """One row: a run's evaluation by one benchmark."""

    run: str
    folder: Path
    method: str
    benchmark: str
    split: str
    metrics: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "method": self.method,
            "benchmark": self.benchmark,
            "split": self.split,
            **self.metrics,
        }


def run_comparison(folders: list[str], *, as_json: bool = False, output: str | None = None) -> dict[str, Any]:
    """Read the runs, print the table (or JSON), write CSV, JSON and plots; returns what it wrote."""
    paths = [Path(folder).expanduser() for folder in folders]
    rows = collect(paths)
    output_dir = Path(output).expanduser() if output else default_output(paths)
    prepare_output(output_dir)
    columns = metric_columns(rows)
    files = [
        write_csv(output_dir / "comparison.csv", rows, columns),
        write_json(output_dir / "comparison.json", rows),
    ]
    plot = plot_quality_vs_utility(rows, output_dir / "forget_quality_vs_model_utility.png")
    if plot is not None:
        files.append(plot)
    files.extend(plot_steps(rows, output_dir))
    result = {"runs": [row.row() for row in rows], "files": [str(path) for path in files]}
    if as_json:
        print(json.dumps(result, indent=2, default=_json_value))
    else:
        print_table(rows, columns)
        console.print(f"saved {', '.join(path.name for path in files)} to [bold]{output_dir}[/]")
    return result


# --- reading ---------------------------------------------------------------------------------------------


def collect(folders: Iterable[Path]) -> list[RunSummary]:
    rows: list[RunSummary] = []
    names = run_names(list(folders))
    for folder in folders:
        if not folder.is_dir():
            raise UserError(f"{folder} is not a folder", hint="give run folders (outputs/...) to compare")
        found = summaries_in(folder)
        if not found:
            raise UserError(
                f"{folder} holds no evaluation (no *_SUMMARY.json in it or in its eval/ folder)",
                hint=f"evaluate it first: unlearn eval quickstart/eval model_path={folder}",
            )
        steps = read_steps(folder / EVAL_LOG)
        method = method_of(folder, found[0].parent)  # one folder holds them all
        for summary_file in found:
            benchmark = summary_file.name.removesuffix("_SUMMARY.json")
            settings = _read_json(summary_file.with_name(f"{benchmark}_FINGERPRINTS.json")).get(
                "settings", {}
            )
            metrics = _read_json(summary_file)
            rows.append(
                RunSummary(
                    run=names[folder],
                    folder=folder,
                    method=method,
                    benchmark=benchmark,
                    split=str(settings.get("forget_split") or settings.get("muse_corpus") or ""),
                    metrics=metrics,
                    steps=[s for s in steps if s.get("benchmark") == benchmark],
                )
            )
    return rows


def summaries_in(folder: Path) -> list[Path]:
    """Evaluation summaries of a run folder: its own, else those of its `eval/` subfolder."""
    own = sorted(folder.glob("*_SUMMARY.json"))
    return own or sorted((folder / EVAL_FOLDER).glob("*_SUMMARY.json"))


def run_names(folders: list[Path]) -> dict[Path, str]:
    """Short, distinct names: the folder name, or the path below the folders' common parent."""
    resolved = [folder.resolve() for folder in folders]
    if len({folder.name for folder in resolved}) == len(resolved):
        return {
            folder: resolved_folder.name for folder, resolved_folder in zip(folders, resolved, strict=True)
        }
    common = Path(os.path.commonpath([str(f) for f in resolved])) if resolved else Path()
    return {folder: str(r.relative_to(common)) for folder, r in zip(folders, resolved, strict=True)}


def method_of(folder: Path, evaluated: Path) -> str:
    """What produced the model: the unlearning method, "finetune", or the evaluated model's own run."""
    for candidate in (folder, evaluated):
        manifest = _read_json(candidate / "manifest.json")
        command = manifest.get("command")
        if command in ("train", "unlearn"):
            return str(manifest.get("trainer") or command)
        model = manifest.get("model")
        location = model.get("path") if isinstance(model, dict) else model  # the run record's, or a path
        if command == "eval" and location:
            model_manifest = _read_json(Path(str(location)) / "manifest.json")
            if model_manifest.get("trainer"):
                return str(model_manifest["trainer"])
    return "?"


def read_steps(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                steps.append(json.loads(line))
            except ValueError:
                continue
    return steps


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def metric_columns(rows: list[RunSummary]) -> list[str]:
    present = {name for row in rows for name in row.metrics}
    leading = [name for name in LEADING_METRICS if name in present]
    return leading + sorted(present - set(leading))


# --- writing ---------------------------------------------------------------------------------------------


def default_output(folders: list[Path]) -> Path:
    """`comparison/` next to the runs (in their common parent folder)."""
    resolved = [str(folder.resolve()) for folder in folders]
    common = Path(os.path.commonpath(resolved)) if resolved else Path.cwd()
    if len(resolved) == 1 or common in {Path(r) for r in resolved}:
        common = common.parent
    return common / "comparison"


def prepare_output(output_dir: Path) -> None:
    """Create the output folder; refuse one holding files a comparison did not write."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"{output_dir} exists and is not a folder", hint="choose another --output folder")
    if output_dir.is_dir():
        foreign = [
            p.name
            for p in output_dir.iterdir()
            if p.name not in OUTPUT_FILES and not re.fullmatch(r"steps_.+\.png", p.name)
        ]
        if foreign:
            raise UserError(
                f"{output_dir} holds files a comparison did not write ({', '.join(sorted(foreign)[:3])}); "
                "refusing to write into it",
                hint="choose another folder with --output",
            )
    output_dir.mkdir(parents=True, exist_ok=True)


def write_csv(path: Path, rows: list[RunSummary], columns: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "method", "benchmark", "split", *columns])
        for row in rows:
            values = [row.metrics.get(column) for column in columns]
            writer.writerow(
                [row.run, row.method, row.benchmark, row.split, *("" if v is None else v for v in values)]
            )
    return path


def write_json(path: Path, rows: list[RunSummary]) -> Path:
    path.write_text(
        json.dumps([row.row() for row in rows], indent=2, default=_json_value) + "\n", encoding="utf-8"
    )
    return path


def _json_value(value: Any) -> Any:
    return str(value)


def print_table(rows: list[RunSummary], columns: list[str]) -> None:
    """A table in a terminal; tab-separated lines (header first) when piped, so nothing is cut or wrapped."""
    cells = [
        [row.run, row.method, row.benchmark, row.split, *(format_value(row.metrics.get(c)) for c in columns)]
        for row in rows
    ]
    print_rows(
        ["run", "method", "benchmark", "split", *columns],
        cells,
        as_json=False,
        title=f"Comparison of {len({row.folder for row in rows})} runs",
        header=True,
        numbers=tuple(columns),
    )


# --- plots -----------------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def plot_quality_vs_utility(rows: list[RunSummary], path: Path) -> Path | None:
    """Forget quality (log scale) against model utility, one labelled point per run; forget probability
    stands in for forget quality when no run has one (no retain logs were given)."""
    points = [row for row in rows if _finite(row.metrics.get("model_utility"))]
    if not points:
        return None
    use_quality = any(_finite(row.metrics.get("forget_quality")) for row in points)
    y_key = "forget_quality" if use_quality else "forget_Q_A_Prob"
    points = [row for row in points if _finite(row.metrics.get(y_key))]
    if not points:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.4, 4.8))
    methods = sorted({row.method for row in points})
    markers = "osD^vP*Xh"
    for index, method in enumerate(methods):
        mine = [row for row in points if row.method == method]
        axes.scatter(
            [row.metrics["model_utility"] for row in mine],
            [row.metrics[y_key] for row in mine],
            marker=markers[index % len(markers)],
            s=60,
            label=method,
        )
        for row in mine:
            axes.annotate(row.run, (row.metrics["model_utility"], row.metrics[y_key]), fontsize=8,
                          xytext=(4, 4), textcoords="offset points")  # fmt: skip
    if use_quality:
        axes.set_yscale("log")
        axes.set_ylabel("forget quality (KS-test p-value, log scale; higher is better)")
    else:
        axes.set_ylabel("forget probability (lower is better; no retain logs for forget quality)")
    axes.set_xlabel("model utility (higher is better)")
    axes.set_title("Forgetting against retained utility")
    axes.grid(True, alpha=0.3)
    axes.legend(title="method", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_steps(rows: list[RunSummary], output_dir: Path) -> list[Path]:
    """For each run and benchmark evaluated during training: its metrics against the training step
    (`steps_RUN.png`; `steps_RUN_BENCHMARK.png` for a run with several such benchmarks)."""
    written = []
    plotted = [row for row in rows if len(row.steps) >= 2]
    for row in plotted:
        several = sum(other.folder == row.folder for other in plotted) > 1
        plt = _pyplot()
        figure, axes = plt.subplots(figsize=(6.4, 4.0))
        names = [
            name
            for name in row.steps[-1]["metrics"]
            if all(_finite(s["metrics"].get(name)) for s in row.steps)
        ]
        for name in names:
            steps = [s["step"] for s in row.steps]
            values = [s["metrics"][name] for s in row.steps]
            style = "-" if name.startswith("forget") else "--"
            axes.plot(steps, values, style, marker="o", markersize=3, label=name)
        axes.set_xlabel("training step")
        axes.set_ylabel("value")
        axes.set_title(f"{row.run} ({row.method}): {row.benchmark} during training")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)
        figure.tight_layout()
        name = f"{row.run}_{row.benchmark}" if several else row.run
        path = output_dir / f"steps_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    return written
