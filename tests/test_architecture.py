"""The package's layout is part of its contract: imports point one way down the rooms, every room says what it
holds, modules and functions stay short enough to read, and every public name has a docstring."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "ibnn"

#: The rooms from the floor up (docs/architecture.md); a module may import its own rank or lower.
RANKS = [
    ("ibnn.params", "ibnn.paramfile", "ibnn.validate", "ibnn.published", "ibnn.repro.io", "ibnn.repro.provenance",
     "ibnn.repro.device", "ibnn.repro.progress"),
    ("ibnn.data",),
    ("ibnn.circuit",),
    ("ibnn.nn",),
    ("ibnn.mapping",),
    ("ibnn.analysis",),
    ("ibnn.cost",),
    ("ibnn.explore", "ibnn.jssc"),
    ("ibnn.repro", "ibnn"),
]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def rank(module: str) -> int:
    """The rank of a module: the room with the longest matching prefix."""
    best, best_len = None, -1
    for r, names in enumerate(RANKS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and len(n) > best_len:
                best, best_len = r, len(n)
    assert best is not None, f"{module} belongs to no room of RANKS"
    return best


def modules():
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text())


def imported(name: str, path: Path, tree: ast.Module):
    """Every ibnn module a module imports (absolute or relative), with the line."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod.startswith("ibnn"):
                for a in node.names:      # `from . import x` imports the module x
                    sub = f"{mod}.{a.name}"
                    yield (sub if (PKG.parent / (sub.replace(".", "/") + ".py")).exists()
                           or (PKG.parent / sub.replace(".", "/")).is_dir() else mod), node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("ibnn"):
                    yield a.name, node.lineno


def test_imports_point_down_the_rooms():
    upward = [f"{path.relative_to(PKG.parent)}:{line}: {name} (rank {rank(name)}) imports {mod} (rank {rank(mod)})"
              for name, path, tree in modules() for mod, line in imported(name, path, tree)
              if rank(mod) > rank(name)]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_every_room_says_what_it_holds():
    for init in sorted(PKG.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init.relative_to(PKG.parent)} has no docstring naming its room"


def _code_lines(node) -> int:
    """Lines of a function that are neither blank, comments nor its docstring."""
    lines = ast.get_source_segment(SOURCES[node], node).splitlines()
    doc = ast.get_docstring(node, clean=False)
    n_doc = len(doc.splitlines()) if doc else 0
    return sum(1 for ln in lines if ln.strip() and not ln.strip().startswith("#")) - n_doc


SOURCES: dict = {}


def test_modules_and_functions_are_short():
    long = []
    for name, path, tree in modules():
        src = path.read_text()
        n = len(src.splitlines())
        if n > MAX_MODULE_LINES:
            long.append(f"{name}: {n} lines (max {MAX_MODULE_LINES})")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                SOURCES[node] = src
                if _code_lines(node) > MAX_FUNCTION_LINES and "# long:" not in ast.get_source_segment(src, node):
                    long.append(f"{name}.{node.name}: {_code_lines(node)} code lines (max {MAX_FUNCTION_LINES}; "
                                f"a '# long: <why>' comment in the body accepts it)")
    assert not long, "\n".join(long)


@pytest.mark.parametrize("name,path,tree", list(modules()), ids=lambda x: x if isinstance(x, str) else "")
def test_public_names_have_docstrings(name, path, tree):
    missing = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            if not ast.get_docstring(node):
                missing.append(node.name)
            if isinstance(node, ast.ClassDef):
                missing += [f"{node.name}.{m.name}" for m in node.body
                            if isinstance(m, ast.FunctionDef) and not m.name.startswith("_")
                            and not ast.get_docstring(m) and not _is_trivial(m)]
    assert not missing, f"{name}: public names without a docstring: {missing}"


def _is_trivial(fn: ast.FunctionDef) -> bool:
    """A one-line property whose name says all (fan_in, rows, ...) or the conventional `as_dict` (the fields as
    JSON-ready values) needs no docstring."""
    return fn.name == "as_dict" or (len(fn.body) == 1 and any(isinstance(d, ast.Name) and d.id == "property"
                                                              for d in fn.decorator_list))


MAX_NOTEBOOK_CELL_LINES = 40


def test_notebook_code_cells_are_short():
    """A notebook code cell calls the package, plots and explains: logic longer than ~40 lines belongs in ibnn/."""
    long_cells = []
    for path in sorted((PKG.parent / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            n = len("".join(cell["source"]).splitlines())
            if cell["cell_type"] == "code" and n > MAX_NOTEBOOK_CELL_LINES:
                long_cells.append(f"{path.name} cell {i}: {n} lines")
    assert not long_cells, long_cells
