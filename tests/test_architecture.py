"""Guard rails: the rooms of src/oppkit and the doors between them (docs/ARCHITECTURE.md).

Why a test: a layering rule that is only written down erodes one convenient import at a
time. These read the source (every import, including the ones inside functions and
under TYPE_CHECKING) and fail with the offending module and line.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "oppkit"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports: an oppkit module, or a third-party top-level name
    names: tuple[str, ...]  # for `from X import a, b`
    line: int


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "migrations" not in p.parts
    }


MODULES = _modules()


def _imports() -> list[Import]:
    """Every import in src/oppkit, resolved to the oppkit module it loads."""
    found = []
    for module, path in MODULES.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.append(Import(module, alias.name, (), node.lineno))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = module.split(".")
                    if not is_package:
                        parts = parts[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                names = tuple(a.name for a in node.names)
                found.append(Import(module, base, names, node.lineno))
                for name in names:  # `from . import frames` loads the module oppkit.frames
                    if f"{base}.{name}" in MODULES:
                        found.append(Import(module, f"{base}.{name}", (), node.lineno))
    return found


IMPORTS = _imports()


def _is_ancestor(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def _graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(MODULES)
    for imp in IMPORTS:
        # A module's own parent packages are loaded before it: no edge back to them.
        if imp.target in MODULES and not _is_ancestor(imp.target, imp.module):
            graph.add_edge(imp.module, imp.target, line=imp.line)
    return graph


def _within(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def _offenders(rooms: tuple[str, ...], forbidden: tuple[str, ...], allowed=()) -> list[str]:  # noqa: ANN001
    return [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in IMPORTS
        if any(_within(imp.module, r) for r in rooms)
        and not any(_within(imp.module, a) for a in allowed)
        and any(_within(imp.target, f) for f in forbidden)
    ]


def test_the_module_list_is_real() -> None:
    # the rules below would pass vacuously on an empty or misread tree
    assert {"oppkit", "oppkit.kit", "oppkit.scope", "oppkit.sync.runner"} <= set(MODULES)
    assert any(i.module == "oppkit.kit" and i.target == "oppkit.frames" for i in IMPORTS)


def test_no_import_circle_in_src_oppkit() -> None:
    cycles = [sorted(c) for c in nx.strongly_connected_components(_graph()) if len(c) > 1]
    assert cycles == [], f"import circles: {cycles}"


def test_a_circle_would_be_found() -> None:
    # the detector itself: a feature importing the Kit back would close a circle
    graph = _graph()
    graph.add_edge("oppkit.workflow.engine", "oppkit.kit")
    assert any(len(c) > 1 for c in nx.strongly_connected_components(graph))


def test_sources_know_no_sql_and_no_kit() -> None:
    forbidden = ("sqlalchemy", "oppkit.db", "oppkit.kit", "oppkit.scope", "oppkit.frames",
                 "oppkit.sync")  # fmt: skip
    assert _offenders(("oppkit.sources",), forbidden) == []


def test_db_stands_on_nothing_above_it() -> None:
    above = ("oppkit.kit", "oppkit.scope", "oppkit.frames", "oppkit.sync", "oppkit.sources",
             "oppkit.workflow", "oppkit.widgets", "oppkit.graphs", "oppkit.digest")  # fmt: skip
    assert _offenders(("oppkit.db",), above) == []


def test_widgets_only_draw_and_call() -> None:
    assert _offenders(("oppkit.widgets",), ("oppkit.db", "sqlalchemy")) == []


def test_features_never_import_the_kit() -> None:
    # the Kit is the façade: only what sits on top of it may import it
    on_top = ("oppkit.accessor", "oppkit.widgets", "oppkit.cli", "oppkit.demo",
              "oppkit.workflow.cli")  # fmt: skip
    offenders = _offenders(("oppkit",), ("oppkit.kit",), allowed=("oppkit.kit", *on_top))
    assert [o for o in offenders if not o.startswith("oppkit:")] == []  # oppkit/__init__ too


def test_only_cli_demo_and_agents_import_the_sync_package() -> None:
    commands = ("oppkit.sync", "oppkit.cli", "oppkit.sync_commands", "oppkit.agents_command",
                "oppkit.report_command", "oppkit.agreements_command", "oppkit.demo")  # fmt: skip
    offenders = _offenders(("oppkit",), ("oppkit.sync",), allowed=commands)
    assert offenders == []
    agents = Path(__file__).resolve().parents[1] / "agents"
    for script in agents.glob("*.py"):
        tree = ast.parse(script.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.startswith("oppkit"), f"{script.name}: {node.module}"


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = [
        f"{imp.module}:{imp.line} imports {name} from {imp.target}"
        for imp in IMPORTS
        if imp.target.startswith("oppkit")
        for name in imp.names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert offenders == []


def test_package_init_files_hold_no_logic() -> None:
    # an __init__ re-exports; functions and classes live in modules named for them
    heavy = []
    for module, path in MODULES.items():
        if path.name != "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        if module == "oppkit":
            defs = [d for d in defs if d != "__getattr__"]  # lazy widgets, nothing else
        if defs:
            heavy.append(f"{module}: {defs}")
    assert heavy == []


def test_all_lists_exactly_the_public_api() -> None:
    import oppkit

    public = {
        name
        for name in dir(oppkit)
        if not name.startswith("_") and not isinstance(getattr(oppkit, name), types.ModuleType)
    }
    lazy = {"OpportunityView", "PipelineReview", "TimelineView"}
    assert set(oppkit.__all__) == public | lazy
    assert len(oppkit.__all__) == len(set(oppkit.__all__))
    for name in oppkit.__all__:
        assert getattr(oppkit, name) is not None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("oppkit")))
def test_every_all_entry_exists(module: str) -> None:
    if module.startswith(("oppkit.widgets", "oppkit.graphs")) or module == "oppkit.cli":
        pytest.importorskip("ipywidgets")
    loaded = importlib.import_module(module)
    missing = [n for n in getattr(loaded, "__all__", ()) if not hasattr(loaded, n)]
    assert missing == []


def test_importing_oppkit_loads_no_widgets_and_no_salesforce_client() -> None:
    code = (
        "import sys, oppkit; kit_mods = [m for m in sys.modules if m.split('.')[0] in "
        "('ipywidgets', 'matplotlib', 'simple_salesforce', 'exchangelib', 'pyvis')]; "
        "print(','.join(sorted(kit_mods)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_test_modules_share_through_conftest_and_support_only() -> None:
    # fixtures live in conftest.py, helpers in tests/support.py; no test imports another
    offenders = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                last = node.module.split(".")[-1]
                if node.module.startswith("tests") and (
                    last.startswith("test_") or last == "conftest"
                ):
                    offenders.append(f"{path.name}:{node.lineno} imports {node.module}")
    assert offenders == []
