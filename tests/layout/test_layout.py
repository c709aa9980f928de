"""The floor plan holds (issue #11): imports only point down, vendors stay behind their
adapters, and no module or function grows past what a reader takes in at once.

Read with ``ast`` (nothing is imported); function-level imports count as imports, imports
under ``if TYPE_CHECKING:`` do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.layout.imports import ROOT, cycles, graph, imports_of, module_files

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_TOP_LEVEL_MODULES = 6  # bot/: __init__, __main__, app, deps, settings, console

# vendor package → the only places that may import it
VENDORS: dict[str, tuple[str, ...]] = {
    "slack_sdk": ("bot.adapters", "bot.sim"),
    "slack_bolt": ("bot.adapters", "bot.sim", "bot.runtime", "handlers"),
    "twilio": ("bot.adapters", "bot.sim"),
    "kubernetes": ("bot.adapters", "bot.sim"),
    "httpx": ("bot.adapters", "bot.sim", "bot.console", "storage"),
    "sqlalchemy": ("bot.adapters", "bot.sim", "bot.runtime", "storage"),
    "sqlmodel": ("storage",),
}


def _product_modules() -> dict[str, Path]:
    return module_files()


def test_no_import_circles() -> None:
    assert cycles(graph()) == []


def test_vendor_sdks_are_imported_only_behind_their_adapters() -> None:
    found = []
    for module, path in _product_modules().items():
        for imp in imports_of(module, path):
            vendor = imp.target.split(".")[0]
            allowed = VENDORS.get(vendor)
            if allowed is None:
                continue
            if not any(module == a or module.startswith(a + ".") for a in allowed):
                found.append(f"{path.relative_to(ROOT)}:{imp.line}: {imp.target}")
    assert found == []


def test_function_level_imports_say_why() -> None:
    """A function-level import is kept only to cut a start-up cost, with a comment saying so."""
    found = []
    for module, path in _product_modules().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for imp in imports_of(module, path):
            if imp.is_function_level and "#" not in lines[imp.line - 1]:
                found.append(f"{path.relative_to(ROOT)}:{imp.line}")
    assert sorted(set(found)) == []


def test_bot_top_level_stays_small() -> None:
    top = sorted(p.name for p in (ROOT / "bot").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_no_module_is_too_long() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _product_modules().values()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_too_long() -> None:
    long = {}
    for path in _product_modules().values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = length
    assert long == {}
