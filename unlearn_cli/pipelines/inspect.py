"""`unlearn inspect-data`: how each item is templated, tokenized and masked, and per-split statistics.

Builds only the tokenizer and datasets (no model weights), so it runs in seconds even for recipes of large
models, and shows exactly the tokens the trainer will see: the prompt part dim, the trained part (the
tokens that carry a label) highlighted.
"""

from __future__ import annotations

import statistics
from typing import Any

from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from unlearn_cli.console import console
from unlearn_cli.data.template import IGNORE_INDEX
from unlearn_cli.errors import UserError, did_you_mean

PROMPT_STYLE = "dim"
TRAINED_STYLE = "bold green"
TRAINED_MARKS = ("«", "»")
"""Around trained tokens when the output has no colour (piped, NO_COLOR): the marking must not need it."""


def _colour() -> bool:
    return console.is_terminal and not console.no_color and console.color_system is not None


def _as_list(values: Any) -> list[int]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def token_segments(input_ids: list[int], labels: list[int]) -> list[tuple[bool, list[int]]]:
    """Consecutive runs of tokens, each marked trained (has a label) or not."""
    segments: list[tuple[bool, list[int]]] = []
    for token, label in zip(input_ids, labels, strict=False):
        trained = label != IGNORE_INDEX
        if segments and segments[-1][0] == trained:
            segments[-1][1].append(token)
        else:
            segments.append((trained, [token]))
    return segments


def render_item(item: dict[str, Any], tokenizer: Any, *, marks: bool | None = None) -> Text:
    """One tokenized item as coloured text, trained tokens also between « » when `marks` (default: when
    the output has no colour); generation items show prompt and target separately."""
    marks = not _colour() if marks is None else marks
    opening, closing = TRAINED_MARKS if marks else ("", "")
    input_ids = _as_list(item["input_ids"])
    labels = _as_list(item["labels"])
    text = Text()
    if len(labels) != len(input_ids):
        text.append(tokenizer.decode(input_ids), style=PROMPT_STYLE)
        text.append("\n⟶ target: ", style="italic")
        target = tokenizer.decode([t for t in labels if t != IGNORE_INDEX])
        text.append(f"{opening}{target}{closing}", style=TRAINED_STYLE)
        trained = sum(1 for t in labels if t != IGNORE_INDEX)
    else:
        for is_trained, tokens in token_segments(input_ids, labels):
            if is_trained:
                text.append(f"{opening}{tokenizer.decode(tokens)}{closing}", style=TRAINED_STYLE)
            else:
                text.append(tokenizer.decode(tokens), style=PROMPT_STYLE)
        trained = sum(1 for t in labels if t != IGNORE_INDEX)
    text.append(f"\n[{len(input_ids)} tokens, {trained} trained]", style="cyan")
    return text


def _parts(item: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """The tokenized parts of an item: itself, or each nested part (forget/retain, original/alternate)."""
    if "input_ids" in item:
        return [(prefix, item)]
    parts: list[tuple[str, dict[str, Any]]] = []
    for key, value in item.items():
        if isinstance(value, dict):
            parts.extend(_parts(value, f"{prefix}{key}."))
    return parts


def dataset_statistics(dataset: Any) -> dict[str, Any]:
    """Items, token lengths and trainable-token counts, per part of the items."""
    summary = dataset.summary() if hasattr(dataset, "summary") else {}
    lengths: dict[str, list[int]] = {}
    untrained: dict[str, int] = {}
    for index in range(len(dataset)):
        for name, part in _parts(dataset[index]):
            labels = _as_list(part["labels"])
            lengths.setdefault(name, []).append(len(_as_list(part["input_ids"])))
            untrained[name] = untrained.get(name, 0) + (all(t == IGNORE_INDEX for t in labels))
    return {"items": len(dataset), "summary": summary, "lengths": lengths, "untrained": untrained}


def run_inspection(reference: str, overrides: list[str] | None, *, splits: list[str], num_items: int) -> None:
    from unlearn_cli.container import pipeline_for
    from unlearn_cli.recipes import load_recipe

    recipe = load_recipe(reference, overrides)
    recipe.require("model", "data", command="inspect-data")
    available = list(recipe.data)
    for split in splits:
        if split not in recipe.data:
            raise UserError(
                f"the recipe has no data split '{split}'",
                file=str(recipe.recipe.source),
                key="--split",
                hint=did_you_mean(split, available) or f"splits: {', '.join(available)}",
            )
    pipeline = pipeline_for(recipe)
    tokenizer = pipeline.tokenizer()
    stats_table = Table(title="Per-dataset statistics (token lengths after templating)", title_justify="left")
    for column in ("split", "dataset", "part", "items", "min", "median", "max", "truncated", "no trainable"):
        stats_table.add_column(
            column, justify="right" if column not in ("split", "dataset", "part") else "left"
        )
    for split in splits or available:
        for name, dataset in pipeline.datasets(split=split).items():
            if len(dataset) == 0:
                raise UserError(
                    f"dataset '{name}' of split '{split}' has no items",
                    file=recipe.recipe.origin(("data", split, name)),
                    key=f"data.{split}.{name}",
                    hint="check hf_args (path, name, split) and max_length",
                )
            for index in range(min(num_items, len(dataset))):
                item = dataset[index]
                body = Text()
                for part_name, part in _parts(item):
                    if part_name:
                        body.append(f"{part_name.rstrip('.')}: ", style="bold")
                    body.append_text(render_item(part, tokenizer))
                    body.append("\n")
                title = f"{escape(split)} / {escape(name)} — item {index}"
                console.print(Panel(body, title=title, title_align="left"))
            stats = dataset_statistics(dataset)
            summary = stats["summary"]
            truncated = summary.get("truncated", "?")
            dropped = summary.get("dropped_no_trainable_tokens", 0)
            for part_name, lengths in stats["lengths"].items():
                untrained = stats["untrained"].get(part_name, 0) + dropped
                stats_table.add_row(
                    split,
                    name,
                    part_name.rstrip(".") or "-",
                    str(stats["items"]),
                    str(min(lengths)),
                    f"{statistics.median(lengths):g}",
                    str(max(lengths)),
                    str(truncated),
                    f"{untrained}" + (f" ({dropped} dropped)" if dropped else ""),
                )
    console.print(stats_table)
    trained = "«trained tokens» (loss)" if not _colour() else f"[{TRAINED_STYLE}]trained tokens (loss)[/]"
    console.print(
        f"[{PROMPT_STYLE}]prompt (no loss)[/]  {escape(trained) if not _colour() else trained}\n"
        "items: items kept; min/median/max: tokens per item; truncated: items cut at max_length (still "
        "trained); no trainable: items with no trained token left (dropped at load)",
        soft_wrap=True,
    )
