"""The shape of the package, read from its source: layers import downward only, the edges stay edges.

    web/, cli          the faces: page, HTTP API, MCP tools, command line (only web/ imports gradio)
    actions/           what the faces share: a request in, files out (no gradio)
    service/           continue / interpolate / generate on request objects
    deploy/            the service elsewhere: on Ray Serve replicas, with the client the faces call
    models/            nn.Modules, samplers, checkpoints
    tokens             Melody <-> ids
    render, views      Melody -> audio / pictures / score
    io/                files <-> Melody (nothing of the models, tokens included, and no torch)
    core               melody, errors, settings, paths
    training/          corpus, batches, training, evaluation: imports the library, never imported by it

Our own modules are imported at the top of a module, and the import graph has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "musicgen_app"
CORE = {"core"}
# What each layer may import (besides itself).
ALLOWED = {
    "core": set(),
    "io": CORE,
    "tokens": CORE,
    "render": CORE | {"io"},
    "views": CORE | {"io"},
    "models": CORE | {"tokens"},
    "service": CORE | {"tokens", "models"},
    "deploy": CORE | {"tokens", "models", "service"},
    "actions": CORE | {"io", "tokens", "render", "views", "models", "service"},
    "web": CORE | {"io", "tokens", "render", "views", "models", "service", "actions"},
    "cli": CORE | {"io", "tokens", "render", "views", "models", "service", "actions"},
    "training": CORE | {"io", "tokens", "render", "views", "models", "service"},
}
GRADIO_LAYERS = {"web"}
TORCH_FREE = {"core", "io", "render", "views", "web"}


def layer(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts or parts[0] in ("melody", "errors", "settings", "paths", "__main__"):
        return "core" if parts[:1] != ["__main__"] else "cli"
    return parts[0]


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


def test_every_module_has_a_layer():
    for name in _graph():
        assert layer(name) in ALLOWED, f"{name} is in no layer; add it to ALLOWED in this test and its docstring"


def test_layers_import_downward_only():
    graph = _graph()
    for name, imported in graph.items():
        for other in imported:
            if other in graph and layer(other) != layer(name):
                assert layer(other) in ALLOWED[layer(name)], f"{name} ({layer(name)}) imports {other} ({layer(other)})"


def test_only_the_web_face_imports_gradio_and_the_light_layers_no_torch():
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        roots = {n.split(".")[0] for n, _ in _imports(path)}
        if layer(name) not in GRADIO_LAYERS:
            assert "gradio" not in roots, f"{name} imports gradio"
        if layer(name) in TORCH_FREE - {"web"}:
            assert "torch" not in roots, f"{name} imports torch"


def test_the_layer_checker_sees_an_arrow_back_up(tmp_path, monkeypatch):
    pkg = tmp_path / "musicgen_app"
    (pkg / "io").mkdir(parents=True)
    for f in ("__init__.py", "tokens.py", "io/__init__.py"):
        (pkg / f).write_text("")
    (pkg / "io" / "midi.py").write_text("from .. import tokens\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    assert _graph()["musicgen_app.io.midi"] == {"musicgen_app.tokens"}
    try:
        test_layers_import_downward_only()
    except AssertionError as exc:
        assert "io.midi (io) imports musicgen_app.tokens (tokens)" in str(exc)
    else:
        raise AssertionError("the checker let io import tokens")


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
    for path in (PACKAGE / "web").glob("*.py"):
        lines = path.read_text().count("\n")
        assert lines < 300, f"web/{path.name} has {lines} lines; move logic to actions/ or the service"


def test_no_handler_takes_a_dozen_settings_one_by_one():
    """A face passes a request object (or a form's values) whole, never a row of loose settings."""
    for path in [*(PACKAGE / "web").glob("*.py"), PACKAGE / "actions" / "studio.py", PACKAGE / "cli.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                n = len(node.args.args) + len(node.args.kwonlyargs)
                assert n <= 7, f"{path.name}:{node.name} takes {n} parameters; pass the request object"
