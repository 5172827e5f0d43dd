"""The package's shape is a property we keep: layers, module size, one shim for private
Dagster attributes, and a layout picture (docs/ARCHITECTURE.md) that matches the tree.

These read the source with :mod:`ast`; nothing is imported or run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cb_storage_dagster"
ARCHITECTURE = PACKAGE.parent / "docs" / "ARCHITECTURE.md"

CORE = ("domain/", "storage/", "settings/", "retry/", "transforms.py")
"""The storage core: plain Python, usable by service code without Dagster."""

LOWER_LAYERS = {
    "domain/": ("cb_storage_dagster.storage", "cb_storage_dagster.sources", "cb_storage_dagster.orchestration",
                "cb_storage_dagster.settings", "cb_storage_dagster.retry"),
    "storage/": ("cb_storage_dagster.sources", "cb_storage_dagster.orchestration"),
    "sources/": ("cb_storage_dagster.orchestration",),
    "cli/": ("cb_storage_dagster.sources", "cb_storage_dagster.orchestration", "dagster"),
    "query/": ("cb_storage_dagster.sources", "cb_storage_dagster.orchestration", "cb_storage_dagster.cli", "dagster"),
}
"""What each layer may not import: imports point down only."""

MAX_LINES = 300
LONGER_ON_PURPOSE: dict[str, str] = {}
"""Modules allowed over MAX_LINES, each with the reason."""

DAGSTER_INTERNALS = "orchestration/dagster_internals.py"
"""The one module that may touch private attributes of Dagster objects."""


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def imported_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", modules(), ids=relative)
def test_every_module_says_what_its_job_is(path):
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{relative(path)} has no module docstring saying what it is for"


@pytest.mark.parametrize("path", modules(), ids=relative)
def test_modules_stay_small(path):
    lines = len(path.read_text().splitlines())
    name = relative(path)
    if name in LONGER_ON_PURPOSE:
        return
    assert lines <= MAX_LINES, f"{name} has {lines} lines (> {MAX_LINES}): split it by job"


@pytest.mark.parametrize("path", [p for p in modules() if relative(p).startswith(CORE)], ids=relative)
def test_the_storage_core_imports_no_dagster(path):
    dagster = {name for name in imported_modules(ast.parse(path.read_text()))
               if name.split(".")[0] in {"dagster", "dagster_azure", "dagster_webserver"}}
    assert not dagster, f"{relative(path)} imports {sorted(dagster)}: the storage core is plain Python"


@pytest.mark.parametrize("path", modules(), ids=relative)
def test_imports_point_down_only(path):
    name = relative(path)
    forbidden = next((banned for layer, banned in LOWER_LAYERS.items() if name.startswith(layer)), ())
    upward = {m for m in imported_modules(ast.parse(path.read_text())) if m.startswith(forbidden)} if forbidden else set()
    assert not upward, f"{name} imports {sorted(upward)} from a layer above it"


_OWN_OBJECTS = {"self", "cls", "super"}
_PRIVATE = re.compile(r"^_[a-z]")


def private_attributes(tree: ast.AST) -> list[tuple[int, str]]:
    """``x._name`` accesses where ``x`` is not our own object (``self``, ``cls``, ``super()``)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _PRIVATE.match(node.attr):
            continue
        owner = node.value
        if isinstance(owner, ast.Call):
            owner = owner.func
        if isinstance(owner, ast.Name) and (owner.id in _OWN_OBJECTS or owner.id.startswith("_")):
            continue
        if isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name) and owner.value.id == "self":
            continue  # self.<our attribute>._x: one of our own objects
        found.append((node.lineno, ast.unparse(node)))
    return found


def test_private_dagster_attributes_live_in_one_shim_module():
    offenders = {}
    for path in modules():
        name = relative(path)
        if name == DAGSTER_INTERNALS:
            continue
        tree = ast.parse(path.read_text())
        if not any(m.split(".")[0].startswith("dagster") for m in imported_modules(tree)):
            continue
        hits = private_attributes(tree)
        if hits:
            offenders[name] = hits
    assert not offenders, f"private attribute access outside {DAGSTER_INTERNALS}: {offenders}"


def _dagster_private_names(cls: type) -> set[str]:
    """Private attribute names Dagster / dagster-azure classes in ``cls``'s MRO use on ``self``."""
    import inspect

    names: set[str] = set()
    for parent in cls.__mro__[1:]:
        if not parent.__module__.split(".")[0].startswith("dagster"):
            continue
        try:
            source = inspect.getsource(parent)
        except (OSError, TypeError):
            continue
        names.update(re.findall(r"self\.(_[a-z]\w*)", source))
        names.update(n for n in vars(parent) if _PRIVATE.match(n))
    return names


def test_our_subclasses_of_dagster_classes_touch_no_private_parent_attribute():
    import importlib
    import inspect

    offenders = {}
    for path in modules():
        name = relative(path)
        if name == DAGSTER_INTERNALS or not name.startswith("orchestration/"):
            continue
        module = importlib.import_module("cb_storage_dagster." + name[:-3].replace("/", ".").removesuffix(".__init__"))
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            parents_private = _dagster_private_names(cls)
            if not parents_private:
                continue
            used = set(re.findall(r"self\.(_[a-z]\w*)", inspect.getsource(cls)))
            own = {n for n in vars(cls) if _PRIVATE.match(n)}
            hits = sorted((used & parents_private) - own)
            if hits:
                offenders[f"{name}:{cls.__name__}"] = hits
    assert not offenders, f"private attributes of Dagster parent classes used outside {DAGSTER_INTERNALS}: {offenders}"


def test_the_architecture_picture_lists_every_module_and_only_those():
    text = ARCHITECTURE.read_text()
    block = text.split("<!-- modules -->", 2)[1]
    listed = set(re.findall(r"`(cb_storage_dagster/[\w/]+\.py)`", block))
    actual = {f"cb_storage_dagster/{relative(p)}" for p in modules()}
    assert listed == actual, (
        f"docs/ARCHITECTURE.md lists modules that do not exist: {sorted(listed - actual)}; "
        f"and misses: {sorted(actual - listed)}"
    )
