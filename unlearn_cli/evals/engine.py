"""The evaluator every benchmark shares: named metrics over named datasets, dependencies, files, reuse.

A benchmark (TOFU, MUSE) is a table of named *metric specs* — which registered metric function computes the
result, on which of the benchmark's datasets, after which other results, with which arguments — plus the
datasets they read. `Evaluator.evaluate(model)`:

1. resolves the requested names and everything they depend on into one order (each computed once, shared);
2. reuses an earlier result from the output folder only when its *fingerprint* — the model's weights, the
   tokenized data, the metric's handler, arguments and code, the fingerprints of what it depends on and the
   reference logs it reads — is identical; everything else is computed (``overwrite`` recomputes all);
3. scores all sequences the pending metrics read (those declared with `reads("scores")`) in one shared
   forward pass, and generates all answers in one batched pass (`scoring.ScorePool`,
   `generation.GenerationPool`), each rank a share under several processes;
4. writes `<NAME>_EVAL.json` (every result: `agg_value`, `value_by_index`, in the reference framework's
   layout, so its published retain-model logs and ours are interchangeable), `<NAME>_SUMMARY.json` (the
   requested aggregates) and `<NAME>_FINGERPRINTS.json` (what each result was computed from).

A metric is a registered function ``fn(inputs: MetricInputs, **args) -> {"agg_value": ..., ...}``; `reads`
declares at its definition what it reads besides its items. `Benchmark` is what every benchmark shares (its
files, reuse, evaluation mode), also those that compute with another engine (`harness.LMEval`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from unlearn_cli.errors import UserError, did_you_mean
from unlearn_cli.evals.distributed import World
from unlearn_cli.evals.generation import Generation, GenerationPool, GreedySettings
from unlearn_cli.evals.report import Reporter
from unlearn_cli.evals.scoring import ScorePool, SequenceScores, item_index, iter_items, pad_token_id
from unlearn_cli.run_folder import write_json

MetricResult = dict[str, Any]
FILE_FORMAT = 1
F = TypeVar("F", bound=Callable[..., Any])
MetricNeed = Literal["scores", "reference_model"]


def reads(*needs: MetricNeed) -> Callable[[F], F]:
    """Declare, next to a metric function, what it reads besides its items and results: "scores" (the shared
    forward pass: its datasets join the first scoring pass instead of one of their own), "reference_model"
    (`reference_model_path`: part of its results' fingerprints)."""

    def declare(metric: F) -> F:
        metric.reads = frozenset(needs)  # type: ignore[attr-defined]
        return metric

    return declare


@dataclass(frozen=True)
class DataSpec:
    """One dataset of a benchmark: a registered dataset handler and its arguments; `key` is the recipe
    argument a loading error is reported under."""

    handler: str
    args: Mapping[str, Any]
    key: str = "args"

    @property
    def generates(self) -> bool:
        return bool(self.args.get("predict_with_generate"))


@dataclass(frozen=True)
class MetricSpec:
    """One named result of a benchmark.

    `data` maps the roles the handler reads ("data", or "forget"/"holdout") to dataset names of the
    benchmark; `needs` maps access keys to the names of results computed first; `reference_logs` maps
    access keys to result names read from the retain model's logs; `args` go to the handler as keywords.
    """

    handler: str
    data: Mapping[str, str] = field(default_factory=dict)
    needs: Mapping[str, str] = field(default_factory=dict)
    reference_logs: Mapping[str, str] = field(default_factory=dict)
    args: Mapping[str, Any] = field(default_factory=dict)
    generation: GreedySettings | None = None


@dataclass
class MetricInputs:
    """Everything a metric function may read. Datasets' per-item scores and generations come from pools
    shared by all metrics of the evaluation, so asking for them costs a forward pass only the first time."""

    name: str
    model: Any
    tokenizer: Any
    data: Mapping[str, Any]
    results: Mapping[str, MetricResult]
    reference_logs: Mapping[str, MetricResult | None]
    generation: GreedySettings | None
    batch_size: int
    world: World
    reporter: Reporter
    scores_pool: ScorePool
    generation_pool: GenerationPool
    reference_model_path: str | None = None
    cache: dict[Any, Any] = field(default_factory=dict)
    """Kept by the evaluator across its evaluations, for what does not depend on the evaluated model (a
    reference model's scores), keyed by what it does depend on."""

    def scores(self, role: str = "data") -> list[tuple[str, SequenceScores]]:
        """(index, scores) of every item of the dataset in `role`, in dataset order."""
        dataset = self.data[role]
        scored = self.scores_pool.scores(dataset)
        pairs = zip(iter_items(dataset), scored, strict=True)
        return [(item_index(item, i), s) for i, (item, s) in enumerate(pairs)]

    def generations(self, role: str = "data") -> list[tuple[str, Generation]]:
        """(index, generation) of every item of the prompt dataset in `role`, in dataset order."""
        if self.generation is None:
            raise ValueError(f"metric {self.name} reads generations but its spec sets no generation settings")
        dataset = self.data[role]
        generated = self.generation_pool.generations(dataset, self.generation)
        pairs = zip(iter_items(dataset), generated, strict=True)
        return [(item_index(item, i), g) for i, (item, g) in enumerate(pairs)]

    def per_item(self, role: str, compute: Callable[[dict[str, Any]], float]) -> list[tuple[str, float]]:
        """`compute(item)` for every item of a dataset, each rank a share (work that cannot be batched, such
        as one backward pass per item), gathered in dataset order."""
        items = list(iter_items(self.data[role]))
        done = self.world.run_shared(list(range(len(items))), lambda i: {i: compute(items[i])})
        return [(item_index(items[i], i), done[i]) for i in range(len(items))]

    def warn(self, text: str) -> None:
        self.reporter.warning(f"{self.name}: {text}")


@dataclass
class Evaluation:
    """What one `evaluate` call produced."""

    benchmark: str
    results: dict[str, MetricResult]
    summary: dict[str, Any]
    reused: set[str]
    seconds: float
    files: list[Path] = field(default_factory=list)


def group_by_index(pairs: Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
    """Values of items that share an index (the options of one question), in order."""
    grouped: dict[str, list[Any]] = {}
    for index, value in pairs:
        grouped.setdefault(index, []).append(value)
    return grouped


class CustomMetric(BaseModel):
    """A metric a recipe adds to a benchmark: a registered metric function on the benchmark's datasets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    handler: str
    data: dict[str, str] = {}
    needs: dict[str, str] = {}
    reference_logs: dict[str, str] = {}
    args: dict[str, Any] = {}
    max_new_tokens: int | None = None
    stop_strings: list[str] = []

    def spec(self, key: str) -> MetricSpec:
        generation = None
        if self.max_new_tokens is not None:
            generation = GreedySettings.checked(
                self.max_new_tokens, self.stop_strings, key=f"{key}.max_new_tokens"
            )
        return MetricSpec(self.handler, self.data, self.needs, self.reference_logs, self.args, generation)


def custom_specs(
    custom_metrics: Mapping[str, Mapping[str, Any]], table: Mapping[str, MetricSpec]
) -> dict[str, MetricSpec]:
    """`custom_metrics` from a recipe as metric specs; a name may not hide one of the benchmark's own."""
    specs = {}
    for name, value in custom_metrics.items():
        key = f"custom_metrics.{name}"
        if name in table:
            raise UserError(
                f"custom metric '{name}' has the name of a built-in metric",
                key=key,
                hint="choose another name",
            )
        try:
            specs[name] = CustomMetric.model_validate(value).spec(key)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise UserError(f"{error['msg']}", key=f"{key}.{where}".rstrip(".")) from None
    return specs


def check_metric_names(
    args: Mapping[str, Any], table: Mapping[str, MetricSpec], default_metrics: Iterable[str]
) -> None:
    """A benchmark's `metrics` and `custom_metrics` arguments checked against its table (its `check_args`, at
    recipe validation, before a tokenizer or data loads)."""
    custom = custom_specs(args.get("custom_metrics", {}), table)
    resolve_order(args.get("metrics", default_metrics), {**table, **custom})


def membership_specs(forget: str, holdout: str, memorized: str) -> dict[str, MetricSpec]:
    """The metrics TOFU and MUSE share: the membership attacks on the `forget` (members) and `holdout`
    (non-members) datasets, privleak (from the min-k attack), and exact memorisation and extraction strength
    of the `memorized` texts."""
    mia = {"forget": forget, "holdout": holdout}
    return {
        "mia_loss": MetricSpec("mia_loss", mia),
        "mia_zlib": MetricSpec("mia_zlib", mia),
        "mia_min_k": MetricSpec("mia_min_k", mia, args={"k": 0.4}),
        "mia_min_k_plus_plus": MetricSpec("mia_min_k_plus_plus", mia, args={"k": 0.4}),
        "mia_gradnorm": MetricSpec("mia_gradnorm", mia, args={"p": 2}),
        "mia_reference": MetricSpec("mia_reference", mia),
        "privleak": MetricSpec(
            "privleak",
            needs={"forget": "mia_min_k"},
            reference_logs={"retain": "mia_min_k"},
            args={"ref_value": 0.5},
        ),
        "exact_memorization": MetricSpec("exact_memorization", {"data": memorized}),
        "extraction_strength": MetricSpec("extraction_strength", {"data": memorized}),
    }


@contextmanager
def evaluation_mode(model: Any) -> Iterator[None]:
    """The model in eval mode (dropout off) for the body, in its earlier mode afterwards (training goes on
    after an evaluation point)."""
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class Benchmark:
    """What every benchmark shares: its files in an output folder (`<NAME>_EVAL.json`, `_SUMMARY.json`,
    `_FINGERPRINTS.json`) and the reuse of the earlier results whose fingerprint is today's."""

    name: str = "EVAL"
    settings: Mapping[str, Any] = {}
    """What a reader of the results needs to know (the forget split...); kept in the fingerprints file."""

    def file(self, output_dir: Path, suffix: str) -> Path:
        return output_dir / f"{self.name}_{suffix}.json"

    def _reusable(self, output_dir: Path, fingerprints: Mapping[str, str | None]) -> dict[str, MetricResult]:
        """Earlier results whose fingerprint equals today's (nothing when there is no fingerprint file)."""
        eval_file, stamp_file = self.file(output_dir, "EVAL"), self.file(output_dir, "FINGERPRINTS")
        if not eval_file.is_file() or not stamp_file.is_file():
            return {}
        try:
            logs = json.loads(eval_file.read_text(encoding="utf-8"))
            stamps = json.loads(stamp_file.read_text(encoding="utf-8")).get("metrics", {})
        except (OSError, ValueError, AttributeError):
            return {}
        return {
            name: logs[name]
            for name, fingerprint in fingerprints.items()
            if fingerprint is not None and stamps.get(name) == fingerprint and name in logs
        }

    def _write(
        self,
        output_dir: Path,
        results: Mapping[str, MetricResult],
        summary: Mapping[str, Any],
        fingerprints: Mapping[str, str | None],
    ) -> list[Path]:
        """The files hold exactly this evaluation's results (requested and needed), never older ones
        computed under other settings."""
        output_dir.mkdir(parents=True, exist_ok=True)
        stamps = {name: fingerprints[name] for name in results}
        return [
            write_json(self.file(output_dir, "EVAL"), dict(sorted(results.items()))),
            write_json(self.file(output_dir, "SUMMARY"), dict(summary)),
            write_json(
                self.file(output_dir, "FINGERPRINTS"),
                {
                    "format": FILE_FORMAT,
                    "benchmark": self.name,
                    "settings": dict(self.settings),
                    "metrics": dict(sorted(stamps.items())),
                },
            ),
        ]


class Evaluator(Benchmark):
    """Runs a benchmark's metrics on a model; subclasses give the name, the data and the metric table.

    `custom_metrics` (from a recipe: name -> `CustomMetric` fields) join the table."""

    def __init__(
        self,
        *,
        tokenizer: Any,
        template_args: Any = None,
        data: Mapping[str, DataSpec],
        metric_table: Mapping[str, MetricSpec],
        metrics: Iterable[str],
        batch_size: int = 32,
        retain_logs_path: str | None = None,
        reference_model_path: str | None = None,
        custom_metrics: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.template_args = template_args
        self.data_specs = dict(data)
        self.metric_table = {**metric_table, **custom_specs(custom_metrics or {}, metric_table)}
        self.requested = list(dict.fromkeys(metrics))
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}", key="batch_size")
        self.batch_size = batch_size
        self.retain_logs_path = retain_logs_path or None
        self.reference_model_path = reference_model_path or None
        self.order = resolve_order(self.requested, self.metric_table)
        self._check_table()
        self._datasets: dict[str, Any] = {}
        self._retain_logs: tuple[int, dict[str, MetricResult]] | None = None
        self._cache: dict[Any, Any] = {}

    # --- the table ---------------------------------------------------------------------------------------

    def _check_table(self) -> None:
        from unlearn_cli.registry import Catalog

        catalog = Catalog.discover()
        for name in self.order:
            spec = self.metric_table[name]
            catalog.get("metric", spec.handler, key="metrics")
            for role, data_name in spec.data.items():
                if data_name not in self.data_specs:
                    raise UserError(
                        f"metric '{name}' reads dataset '{data_name}' ({role}), which {self.name} does "
                        "not have",
                        key="custom_metrics",
                        hint=f"datasets: {', '.join(sorted(self.data_specs))}",
                    )
            if spec.reference_logs and self.retain_logs_path is not None:
                path = Path(self.retain_logs_path).expanduser()
                if not path.is_file():
                    raise UserError(
                        f"retain model logs not found: {path}",
                        key="retain_logs_path",
                        hint="give the TOFU_EVAL.json / MUSE_EVAL.json of the retain model (ours or the "
                        "reference framework's), or leave it empty",
                    )

    def dataset(self, name: str) -> Any:
        """The benchmark's dataset `name`, built (tokenized, cached on disk) on first use."""
        if name not in self._datasets:
            from unlearn_cli.registry import Catalog

            spec = self.data_specs[name]
            handler = Catalog.discover().get("dataset", spec.handler).load()
            try:
                self._datasets[name] = handler(
                    **spec.args, tokenizer=self.tokenizer, template_args=self.template_args
                )
            except UserError as exc:
                raise UserError(
                    f"{self.name} dataset '{name}': {exc.problem}", key=spec.key, hint=exc.hint
                ) from None
        return self._datasets[name]

    # --- evaluation --------------------------------------------------------------------------------------

    def evaluate(
        self,
        model: Any,
        *,
        output_dir: Path | None = None,
        overwrite: bool = False,
        reporter: Reporter | None = None,
        model_digest: str | None = None,
    ) -> Evaluation:
        """Compute the requested metrics (reusing identical earlier results in `output_dir`); write the
        files there (rank 0) when it is given. `model_digest` is the model's `weights_digest` when the caller
        has it already (one for all the benchmarks of an evaluation); computed here otherwise."""
        reporter = reporter or Reporter()
        world = World.current()
        clock = time.perf_counter()
        with evaluation_mode(model):
            reference = self._reference_logs(reporter)
            fingerprints: dict[str, str | None] = dict.fromkeys(self.order)
            if output_dir is not None:
                digest = model_digest if model_digest is not None else weights_digest(model)
                fingerprints.update(self._fingerprints(digest, reference))
            previous = {} if overwrite or output_dir is None else self._reusable(output_dir, fingerprints)
            results: dict[str, MetricResult] = {}
            reused: set[str] = set()
            pending = [name for name in self.order if name not in previous]
            scores, generations = self._pools(model, pending, world, reporter)
            for name in self.order:
                if name in previous:
                    results[name] = previous[name]
                    reused.add(name)
                    reporter.metric_done(self.name, name, results[name].get("agg_value"), 0.0, True)
                    continue
                started = time.perf_counter()
                results[name] = self._compute(
                    name, model, results, reference, scores, generations, world, reporter
                )
                seconds = time.perf_counter() - started
                reporter.metric_done(self.name, name, results[name].get("agg_value"), seconds, False)
        summary = {name: results[name].get("agg_value") for name in self.requested}
        evaluation = Evaluation(self.name, results, summary, reused, time.perf_counter() - clock)
        if output_dir is not None and world.is_main:
            evaluation.files = self._write(output_dir, results, summary, fingerprints)
        world.barrier()
        return evaluation

    def _pools(
        self, model: Any, pending: list[str], world: World, reporter: Reporter
    ) -> tuple[ScorePool, GenerationPool]:
        scores = ScorePool(
            model,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=pad_token_id(self.tokenizer),
            batch_size=self.batch_size,
            world=world,
            reporter=reporter,
        )
        generations = GenerationPool(
            model, self.tokenizer, batch_size=self.batch_size, world=world, reporter=reporter
        )
        for name in pending:
            spec = self.metric_table[name]
            for data_name in spec.data.values():
                dataset = self.dataset(data_name)
                if self.data_specs[data_name].generates:
                    if spec.generation is not None:
                        generations.expect(dataset, spec.generation)
                elif "scores" in metric_reads(spec.handler):
                    scores.expect(dataset)
        return scores, generations

    def _compute(
        self,
        name: str,
        model: Any,
        results: Mapping[str, MetricResult],
        reference: Mapping[str, MetricResult | None],
        scores: ScorePool,
        generations: GenerationPool,
        world: World,
        reporter: Reporter,
    ) -> MetricResult:
        from unlearn_cli.registry import Catalog

        spec = self.metric_table[name]
        handler = Catalog.discover().get("metric", spec.handler).load()
        inputs = MetricInputs(
            name=name,
            model=model,
            tokenizer=self.tokenizer,
            data={role: self.dataset(data_name) for role, data_name in spec.data.items()},
            results={key: results[dep] for key, dep in spec.needs.items()},
            reference_logs={key: reference.get(source) for key, source in spec.reference_logs.items()},
            generation=spec.generation,
            batch_size=self.batch_size,
            world=world,
            reporter=reporter,
            scores_pool=scores,
            generation_pool=generations,
            reference_model_path=self.reference_model_path,
            cache=self._cache,
        )
        result = handler(inputs, **spec.args)
        if not isinstance(result, dict) or "agg_value" not in result:
            raise TypeError(f"metric handler '{spec.handler}' must return a dict with 'agg_value'")
        return plain_json(result)

    # --- reference logs ----------------------------------------------------------------------------------

    def _reference_logs(self, reporter: Reporter) -> dict[str, MetricResult | None]:
        """The results of the retain model that the ordered metrics read, from `retain_logs_path`."""
        wanted = {source for name in self.order for source in self.metric_table[name].reference_logs.values()}
        if not wanted:
            return {}
        if self.retain_logs_path is None:
            return dict.fromkeys(wanted)
        logs = self._read_retain_logs(Path(self.retain_logs_path).expanduser())
        found: dict[str, MetricResult | None] = {}
        for source in sorted(wanted):
            found[source] = logs.get(source)
            if found[source] is None:
                reporter.warning(
                    f"{self.name}: the retain model logs {self.retain_logs_path} have no '{source}'; the "
                    "metrics that compare with it use their fallback"
                )
        return found

    def _read_retain_logs(self, path: Path) -> dict[str, MetricResult]:
        """The retain model's logs, read again only when the file changed (evaluations during training)."""
        try:
            changed = path.stat().st_mtime_ns
        except OSError:
            changed = -1  # read_logs says why
        if self._retain_logs is None or self._retain_logs[0] != changed:
            self._retain_logs = (changed, read_logs(path))
        return self._retain_logs[1]

    # --- fingerprints ------------------------------------------------------------------------------------

    def _fingerprints(
        self, model_digest: str, reference: Mapping[str, MetricResult | None]
    ) -> dict[str, str]:
        data_digests: dict[str, str] = {}
        out: dict[str, str] = {}
        for name in self.order:
            spec = self.metric_table[name]
            for data_name in spec.data.values():
                if data_name not in data_digests:
                    data_digests[data_name] = dataset_fingerprint(
                        self.dataset(data_name), self.data_specs[data_name]
                    )
            reads_reference_model = "reference_model" in metric_reads(spec.handler)
            out[name] = value_digest(
                {
                    "metric": name,
                    "handler": spec.handler,
                    "args": spec.args,
                    "generation": spec.generation,
                    "data": {role: data_digests[d] for role, d in sorted(spec.data.items())},
                    "needs": {key: out[dep] for key, dep in sorted(spec.needs.items())},
                    "reference_logs": {
                        key: value_digest(reference.get(source))
                        for key, source in sorted(spec.reference_logs.items())
                    },
                    "reference_model": self.reference_model_path if reads_reference_model else None,
                    "model": model_digest,
                    "code": _code_digest(spec.handler),
                }
            )
        return out


def metric_reads(handler: str) -> frozenset[MetricNeed]:
    """What the registered metric function `handler` declared with `reads` (nothing when it declared none)."""
    from unlearn_cli.registry import Catalog

    return getattr(Catalog.discover().get("metric", handler).load(), "reads", frozenset())


def resolve_order(requested: Iterable[str], table: Mapping[str, MetricSpec]) -> list[str]:
    """Every requested metric and what it depends on, dependencies first, each once."""
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str, needed_by: str | None) -> None:
        if name in order:
            return
        if name not in table:
            known = sorted(table)
            where = f" (needed by '{needed_by}')" if needed_by else ""
            raise UserError(
                f"unknown metric '{name}'{where}",
                key="metrics",
                hint=did_you_mean(name, known) or f"available: {', '.join(known)}",
            )
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise UserError(f"metrics depend on each other in a circle: {cycle}", key="metrics")
        visiting.append(name)
        for dependency in table[name].needs.values():
            visit(dependency, name)
        visiting.pop()
        order.append(name)

    for name in requested:
        visit(name, None)
    return order


def read_logs(path: Path) -> dict[str, MetricResult]:
    """An `*_EVAL.json` file (ours or the reference framework's) as {metric name: result}."""
    try:
        logs = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}", key="retain_logs_path") from None
    except ValueError as exc:
        raise UserError(
            f"{path} is not a JSON file of evaluation logs: {exc}", key="retain_logs_path"
        ) from None
    if not isinstance(logs, dict):
        raise UserError(
            f"{path} holds no evaluation logs (a JSON object by metric name)", key="retain_logs_path"
        )
    return logs


def weights_digest(model: Any) -> str:
    """A digest of the model's weights and buffers (its class and dtype included): what it computes.

    Reads every tensor once (about a second per 2 GB); only evaluations that write files need it, once for
    all their benchmarks.
    """
    import torch

    digest = hashlib.blake2b(digest_size=16)
    digest.update(type(model).__name__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        data = tensor.detach().to("cpu").contiguous()
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def dataset_fingerprint(dataset: Any, spec: DataSpec) -> str:
    """The tokenized dataset's own cache fingerprint (data, tokenizer, template, settings, code); the
    spec's digest when the dataset keeps none."""
    tokenized = getattr(dataset, "tokenized", None)
    fingerprint = getattr(tokenized, "_fingerprint", None)
    return str(fingerprint) if fingerprint else value_digest({"handler": spec.handler, "args": spec.args})


@cache
def _code_digest(handler: str) -> str:
    """The source of the evaluation package and of the metric's own module: a fix recomputes results."""
    from unlearn_cli.registry import Catalog

    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    files = sorted(package.glob("*.py"))
    try:
        module = Catalog.discover().get("metric", handler).import_path.partition(":")[0]
        import importlib

        source = getattr(importlib.import_module(module), "__file__", None)
        if source:
            files.append(Path(source))
    except (UserError, ImportError):
        pass
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:32]


def value_digest(value: Any) -> str:
    """A short digest of a JSON-able value (dataclasses, mappings and sets too), whatever its key order."""
    text = json.dumps(value, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return plain_json(value)


def plain_json(value: Any) -> Any:
    """Numbers as Python floats/ints, keys as text, NaN as null: what json writes and reads back unchanged."""
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
