"""The shape of the package, read from its source: imports flow one way, the edges stay edges.

    io/ (files <-> Melody)  never imports the model layer, torch or the web faces;
    nothing but the web faces (ui, panels, api, studio) imports gradio;
    our own modules are imported at the top of a module, and the import graph has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "musicgen_app"
MODEL_LAYER = {"musicgen_app.models", "musicgen_app.checkpoints", "musicgen_app.service", "musicgen_app.sampling",
               "musicgen_app.train", "musicgen_app.evaluate", "musicgen_app.batches"}
WEB_FACES = {"musicgen_app.ui", "musicgen_app.panels", "musicgen_app.api", "musicgen_app.studio",
             "musicgen_app.widgets", "musicgen_app.tab_continue", "musicgen_app.tab_interpolate",
             "musicgen_app.tab_generate"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at top level?) for every import in the file; `from . import x` names x."""
    module, tree = _module_name(path), ast.parse(path.read_text())
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, path.name == "__init__.py")
            names = [f"{target}.{a.name}" for a in node.names]
            known = [n for n in names if _is_module(n)]
            out += [(n, id(node) in top) for n in known] or [(target, id(node) in top)]
    return out


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").is_file() or (PACKAGE.parent / rel / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        graph[_module_name(path)] = {m for m, _ in _imports(path) if m.startswith("musicgen_app")}
    return graph


def _under(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_the_input_edge_does_not_reach_into_the_models_or_the_web():
    for path in (PACKAGE / "io").glob("*.py"):
        for name, _ in _imports(path):
            assert not _under(name, MODEL_LAYER | WEB_FACES), f"{path.name} imports {name}"
            assert name.split(".")[0] not in ("torch", "gradio"), f"{path.name} imports {name}"


def test_only_the_web_faces_import_gradio():
    for path in PACKAGE.rglob("*.py"):
        if _module_name(path) in WEB_FACES:
            continue
        assert not any(name.split(".")[0] == "gradio" for name, _ in _imports(path)), path.name


def test_our_own_modules_are_imported_at_the_top():
    for path in PACKAGE.rglob("*.py"):
        late = [name for name, top in _imports(path) if name.startswith("musicgen_app") and not top]
        assert not late, f"{path.relative_to(PACKAGE)} imports {late} inside a function"


def test_the_checker_sees_a_cycle_and_a_late_import(tmp_path, monkeypatch):
    # the tests above must be able to fail: a tiny package with both faults
    pkg = tmp_path / "musicgen_app"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    assert _graph()["musicgen_app.b"] == {"musicgen_app.a"}
    assert ("musicgen_app.a", False) in _imports(pkg / "b.py")


def test_the_page_modules_stay_layout_and_handlers():
    for name in ("ui", "widgets", "tab_continue", "tab_interpolate", "tab_generate"):
        lines = (PACKAGE / f"{name}.py").read_text().count("\n")
        assert lines < 300, f"{name}.py has {lines} lines; move logic to studio, outputs or the service"
