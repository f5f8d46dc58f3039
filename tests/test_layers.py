"""The layers, from the import graph: dependencies point inward only, and modules stay small.

steps/ imports nothing of pipelines/; pipelines.spec imports no other layer; pipelines.compile nothing of
local, aws or the commands; pipelines.local nothing of aws; pipelines.aws nothing of local. Imports inside
functions count too. A violation names the file, the line and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

FORBIDDEN = {  # layer → the layers it may not import
    "steps": ("pipelines",),
    "pipelines.spec": ("pipelines.compile", "pipelines.local", "pipelines.aws", "pipelines.commands", "pipelines.cli"),
    "pipelines.compile": ("pipelines.local", "pipelines.aws", "pipelines.commands", "pipelines.cli"),
    "pipelines.local": ("pipelines.aws", "pipelines.commands", "pipelines.cli"),
    "pipelines.aws": ("pipelines.local", "pipelines.commands", "pipelines.cli"),
    "pipelines.store": ("pipelines.spec", "pipelines.compile", "pipelines.local", "pipelines.aws", "pipelines.commands",
                        "pipelines.cli"),
}
ENGINE = ("pipelines.local.executor", "pipelines.local.cache", "pipelines.local.graph", "pipelines.local.expressions")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60


def sources() -> list[Path]:
    return sorted(p for folder in ("pipelines", "steps") for p in (ROOT / folder).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    return next((layer for layer in sorted(FORBIDDEN, key=len, reverse=True)
                 if module == layer or module.startswith(layer + ".")), None)


def imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def violations(path: Path) -> list[str]:
    layer = layer_of(module_name(path))
    if layer is None:
        return []
    rel = path.relative_to(ROOT)
    return [f"{rel}:{line}: imports {target} ({layer} may not import {banned})"
            for line, target in imports(path) for banned in FORBIDDEN[layer]
            if target == banned or target.startswith(banned + ".")]


def test_every_module_belongs_to_a_layer_or_the_front_door():
    loose = [module_name(p) for p in sources() if layer_of(module_name(p)) is None]
    assert sorted(loose) == ["pipelines", "pipelines.__main__", "pipelines.cli", "pipelines.commands",
                             *sorted(m for m in loose if m.startswith("pipelines.commands."))]


def test_dependencies_point_inward_only():
    found = [v for path in sources() for v in violations(path)]
    assert found == [], "\n".join(found)


def test_the_checker_names_an_offending_import(tmp_path, monkeypatch):
    bad = ROOT / "pipelines" / "spec" / "_layer_probe.py"
    bad.write_text("def f():\n    from pipelines.compile.plan import plan\n    return plan\n", encoding="utf-8")
    try:
        assert violations(bad) == ["pipelines/spec/_layer_probe.py:2: imports pipelines.compile.plan "
                                   "(pipelines.spec may not import pipelines.compile)",
                                   "pipelines/spec/_layer_probe.py:2: imports pipelines.compile.plan.plan "
                                   "(pipelines.spec may not import pipelines.compile)"]
    finally:
        bad.unlink()


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: {len(text.splitlines())} lines"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == [], f"{path.name}: {long}"


def import_graph() -> dict[str, set[str]]:
    """module → the project modules it imports (inside functions too), an import of a name resolved to its module."""
    modules = {module_name(p): p for p in sources()}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for _, target in imports(path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, each once (by its smallest module), found by depth-first search."""
    found, seen = [], set()

    def visit(node, path):
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                circle = path[path.index(nxt):]
                key = tuple(sorted(circle))
                if key not in seen:
                    seen.add(key)
                    found.append(circle + [nxt])
            elif len(path) < 12:
                visit(nxt, path + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    return found


def test_no_import_circles_anywhere():
    graph = import_graph()
    # a package's __init__ is not a cycle with its own modules: it is what importing them runs first
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    assert cycles(graph) == [], cycles(graph)


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_programs_import_libraries_never_each_other():
    from steps.launcher import PROGRAMS

    programs = {f"steps.{p}" for p in PROGRAMS}
    graph = import_graph()
    crossing = {p: sorted(graph[p] & programs) for p in programs if graph[p] & programs}
    assert crossing == {}


def test_every_package_says_what_it_owns():
    packages = [p for p in sources() if p.name == "__init__.py"]
    silent = [str(p.relative_to(ROOT)) for p in packages if ast.get_docstring(ast.parse(p.read_text())) is None]
    assert silent == []


def test_the_engine_knows_no_step_type_and_no_tool():
    """The engine walks the DAG; handlers.py alone maps a definition's Type to what runs it."""
    from pipelines.local.handlers import HANDLERS

    graph = import_graph()
    for module in ENGINE:
        path = ROOT / (module.replace(".", "/") + ".py")
        literals = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)}
        assert literals & set(HANDLERS) == set(), f"{module} names step types {literals & set(HANDLERS)}"
        assert {t for t in graph[module] if t.startswith("pipelines.local.tools")} == set(), module
    jobs = {"pipelines.local.training", "pipelines.local.transform", "pipelines.local.tuning", "pipelines.local.notebook"}
    assert graph["pipelines.local.executor"] & jobs == set()


def test_only_commands_use_the_tools():
    users = {m for m, targets in import_graph().items() if any(t.startswith("pipelines.local.tools") for t in targets)}
    assert {m for m in users if not m.startswith(("pipelines.commands", "pipelines.local.tools"))} == set()


def test_every_step_type_a_definition_has_has_a_handler():
    import json

    from pipelines.local.graph import flatten
    from pipelines.local.handlers import HANDLERS

    types = {step["Type"] for golden in (ROOT / "tests" / "golden").glob("*.json")
             for step, _ in flatten(json.loads(golden.read_text())["Steps"]).values()}
    assert types and types <= set(HANDLERS), types - set(HANDLERS)
