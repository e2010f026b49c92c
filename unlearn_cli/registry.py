"""The component catalogue: every model, dataset, collator, trainer (and later metric, benchmark) by name.

A component registers itself where it is defined, with one decorator::

    @register("dataset")
    class QADataset(torch.utils.data.Dataset):
        '''Question/answer pairs, loss on the answer only.'''

Listing must not import torch, so the package's own components are found by reading the source of
`unlearn_cli` with `ast` (the decorator's literal arguments and the docstring's first line); a component's
module is imported only when the component is used. Third-party components arrive at run time, from a
recipe's `plugins = [...]` or the `unlearn_cli.components` entry-point group, and register through the same
decorator when imported.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from unlearn_cli.errors import UserError, did_you_mean

KINDS: tuple[str, ...] = ("model", "dataset", "collator", "trainer", "metric", "benchmark")
ENTRY_POINT_GROUP = "unlearn_cli.components"

T = TypeVar("T")


@dataclass
class Component:
    """One registered handler: what it is called, where it lives, and what it does in one line."""

    kind: str
    name: str
    import_path: str
    description: str
    origin: str = "builtin"
    handler: Any = field(default=None, repr=False, compare=False)

    def load(self) -> Any:
        """Import the handler (a class or a function), importing its module on first use."""
        if self.handler is None:
            module_name, _, attr = self.import_path.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise UserError(
                    f"cannot import {self.kind} '{self.name}' from {module_name}: {exc}",
                    hint="install the package that provides it, or check the plugin's module path",
                ) from exc
            self.handler = getattr(module, attr)
        return self.handler


_runtime: dict[tuple[str, str], Component] = {}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}; expected one of {', '.join(KINDS)}")


def register(kind: str, name: str | None = None, *, description: str | None = None) -> Callable[[T], T]:
    """Register the decorated class or function as a `kind` component named `name` (default: its own name)."""
    _check_kind(kind)

    def decorate(obj: T) -> T:
        registered_name = name or obj.__name__  # type: ignore[attr-defined]
        # its own docstring only, as the static index reads it (inspect.getdoc would inherit a base class's)
        doc = description or _first_line(inspect.cleandoc(obj.__doc__) if obj.__doc__ else None)
        path = f"{obj.__module__}:{obj.__qualname__}"  # type: ignore[attr-defined]
        existing = _runtime.get((kind, registered_name))
        if existing is not None and existing.import_path != path:
            raise ValueError(
                f"{kind} '{registered_name}' is registered twice: {existing.import_path} and {path}"
            )
        origin = "builtin" if obj.__module__.startswith("unlearn_cli.") else f"plugin {obj.__module__}"
        _runtime[(kind, registered_name)] = Component(kind, registered_name, path, doc, origin, obj)
        return obj

    return decorate


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


def _literal(node: ast.expr | None) -> Any:
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        return None


def _registrations_in(tree: ast.Module, module_name: str) -> Iterable[Component]:
    for node in tree.body:
        if not isinstance(node, ast.ClassDef | ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if not isinstance(deco, ast.Call):
                continue
            func = deco.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called != "register":
                continue
            keywords = {kw.arg: _literal(kw.value) for kw in deco.keywords}
            kind = _literal(deco.args[0]) if deco.args else keywords.get("kind")
            name = _literal(deco.args[1]) if len(deco.args) > 1 else keywords.get("name")
            description = keywords.get("description") or _first_line(ast.get_docstring(node))
            if kind in KINDS:
                yield Component(kind, name or node.name, f"{module_name}:{node.name}", description)


@lru_cache(maxsize=1)
def builtin_components() -> tuple[Component, ...]:
    """The package's own components, found by reading its source without importing it."""
    package_root = Path(__file__).resolve().parent
    found: list[Component] = []
    for path in sorted(package_root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "register(" not in text:
            continue
        relative = path.relative_to(package_root.parent).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.extend(_registrations_in(ast.parse(text, filename=str(path)), ".".join(parts)))
    return tuple(found)


def import_plugins(modules: Iterable[str], *, file: str | None = None) -> None:
    """Import third-party component modules named in a recipe's `plugins` list."""
    for index, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except Exception as exc:  # a plugin can fail in any way; the user must see which one and why
            raise UserError(
                f"cannot import plugin module '{module}': {type(exc).__name__}: {exc}",
                file=file,
                key=f"plugins[{index}]",
                hint="the module must be importable (installed, or on PYTHONPATH) and register its "
                "components with @register(...)",
            ) from exc


@lru_cache(maxsize=1)
def _load_entry_points() -> None:
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception as exc:  # a broken third-party package must not break the whole tool
            warnings.warn(
                f"skipping entry point '{entry_point.name}' ({entry_point.value}) of group "
                f"{ENTRY_POINT_GROUP}: {type(exc).__name__}: {exc}",
                stacklevel=2,
            )


class Catalog:
    """All components known now: built-in (static), entry points and imported plugins (runtime)."""

    def __init__(self, components: Iterable[Component]) -> None:
        self._by_kind: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        for component in components:
            self._by_kind[component.kind][component.name] = component

    @classmethod
    def discover(cls, plugins: Iterable[str] = (), *, file: str | None = None) -> Catalog:
        """Collect built-ins, entry-point components and the given plugin modules."""
        _load_entry_points()
        import_plugins(plugins, file=file)
        merged = {(c.kind, c.name): c for c in builtin_components()}
        for key, component in _runtime.items():
            known = merged.get(key)
            if known is not None and known.import_path != component.import_path:
                raise UserError(
                    f"{component.kind} '{component.name}' from {component.import_path} clashes with the "
                    f"one from {known.import_path}",
                    hint="register the third-party component under another name",
                )
            merged[key] = component
        return cls(merged.values())

    def names(self, kind: str) -> list[str]:
        _check_kind(kind)
        return sorted(self._by_kind[kind])

    def components(self, kind: str | None = None) -> list[Component]:
        kinds = [kind] if kind else list(KINDS)
        return [self._by_kind[k][n] for k in kinds for n in sorted(self._by_kind[k])]

    def get(self, kind: str, name: str, *, file: str | None = None, key: str | None = None) -> Component:
        """The component `name` of `kind`, or a UserError naming the closest registered names."""
        _check_kind(kind)
        found = self._by_kind[kind].get(name)
        if found is not None:
            return found
        known = self.names(kind)
        hint = did_you_mean(name, known) or (
            f"registered {kind} handlers: {', '.join(known)}" if known else f"no {kind} is registered"
        )
        raise UserError(
            f"unknown {kind} handler '{name}'",
            file=file,
            key=key,
            hint=hint + " (see `unlearn registry list`)",
        )

    def find(self, name: str) -> list[Component]:
        """Every component called `name`, whatever its kind."""
        return [by_name[name] for by_name in self._by_kind.values() if name in by_name]
