"""The package's shape: imports go one way between its layers, no long functions, the README's layout is the tree."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "senet"
# each layer may import itself and the layers listed for it, nothing above
ALLOWED = {
    "files": set(),
    "records": set(),
    "recorded": set(),
    "progress": set(),
    "data": {"files"},
    "models": set(),
    "checkpoint": {"files", "records", "data", "models"},
    "analysis": {"files", "recorded", "progress", "data", "models", "checkpoint"},
    "interop": {"files", "data", "models", "checkpoint"},
    "training": {"files", "records", "recorded", "progress", "data", "models", "checkpoint", "analysis"},
    "cli": {"files", "records", "recorded", "progress", "data", "models", "checkpoint", "analysis", "training", "interop"},
    "__init__": {"analysis", "checkpoint", "data", "models"},
    "__main__": {"cli"},
}


def layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def senet_imports(path: Path) -> set[str]:
    """The senet layers a module imports (absolute or relative, at any depth of the file)."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                parts = base + (node.module.split(".") if node.module else [])
                if len(parts) == 1:  # ``from . import x`` at the top of the package
                    parts += [a.name for a in node.names]
            else:
                parts = (node.module or "").split(".")
            if parts[0] == "senet" and len(parts) > 1:
                found.add(parts[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("senet.")}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down_the_layers(path: Path) -> None:
    layer = layer_of(path)
    outside = senet_imports(path) - ALLOWED[layer] - {layer}
    assert not outside, f"{path.relative_to(ROOT)} ({layer}) imports {sorted(outside)}, above its layer"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_computation_package_never_imports_the_dashboard(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r"^\s*(import|from)\s+(streamlit|plotly|dashboard|views)\b", text, re.M), path


def test_no_function_in_the_computation_package_is_longer_than_80_lines() -> None:
    long = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long, long


def test_the_readme_layout_names_every_folder_and_subpackage() -> None:
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    named = set(re.findall(r"^ {4}(\S+)", layout, re.M))  # top-level entries; those under senet/ are indented
    named |= {f"senet/{name}" for name in re.findall(r"^ {6}(\S+)", layout, re.M)}
    folders = {p.name + "/" for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
               and p.name not in ("data", "runs", "studies", "test-artifacts", "__pycache__")
               and not p.name.endswith(".egg-info")}
    subpackages = {f"senet/{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    missing = (folders | subpackages) - named
    assert not missing, f"the README's Layout section does not name {sorted(missing)}"
    for entry in named:
        assert (ROOT / entry.rstrip("/")).exists(), f"the README's Layout names {entry}, which does not exist"


# --------------------------------------------------------------------------- the dashboard package
DASHBOARD = ROOT / "senet_dashboard"
DASHBOARD_MODULES = sorted(DASHBOARD.rglob("*.py"))


def module_level_lines(tree: ast.Module) -> int:
    """Lines of a module's own script code: everything but imports, definitions and the docstring."""
    skipped = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return sum(n.end_lineno - n.lineno + 1 for n in tree.body if not isinstance(n, skipped)
               and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)))


@pytest.mark.parametrize("path", DASHBOARD_MODULES, ids=lambda p: str(p.relative_to(DASHBOARD)))
def test_no_dashboard_function_or_page_script_is_longer_than_80_lines(path: Path) -> None:
    tree = ast.parse(path.read_text())
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1})" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno >= 80]
    assert not long, f"{path.relative_to(ROOT)}: functions of 80 lines or more: {long}"
    assert module_level_lines(tree) < 80, f"{path.relative_to(ROOT)}: {module_level_lines(tree)} lines of page script"


def dashboard_imports(path: Path) -> set[str]:
    """The senet_dashboard modules a module imports, anywhere in the file (``senet_dashboard.views._loaders``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("senet_dashboard"):
            for alias in node.names:  # ``from senet_dashboard.views import _loaders`` names a module too
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if (DASHBOARD.parent / (candidate.replace(".", "/") + ".py")).is_file()
                          else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("senet_dashboard")}
    return found


def test_the_dashboards_modules_import_each_other_without_a_cycle() -> None:
    name = {p: ".".join(p.relative_to(DASHBOARD.parent).with_suffix("").parts) for p in DASHBOARD_MODULES}
    graph = {name[p]: dashboard_imports(p) - {name[p]} for p in DASHBOARD_MODULES}
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for other in sorted(graph.get(module, ())):
            assert state.get(other) != "open", f"import cycle: {' -> '.join(trail + [module, other])}"
            if other not in state:
                visit(other, trail + [module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


@pytest.mark.parametrize("path", DASHBOARD_MODULES, ids=lambda p: str(p.relative_to(DASHBOARD)))
def test_the_dashboards_plumbing_never_imports_streamlit_outside_views(path: Path) -> None:
    """Figures, curves, the catalog, the launcher, the demo policy: testable without a Streamlit session."""
    if path.parent.name == "views" or path.name == "app.py":
        return
    assert not re.search(r"^\s*(import|from)\s+streamlit\b", path.read_text(), re.M), path


@pytest.mark.parametrize("path", sorted((DASHBOARD / "views").glob("*.py")), ids=lambda p: p.name)
def test_pages_name_session_keys_by_their_declaration_not_by_a_string(path: Path) -> None:
    """Each page declares its keys once (a ``Keys`` class, ``SidebarKeys``); a key written as a string literal in
    a widget or in ``st.session_state`` would fail silently when misspelt."""
    literal = re.compile(r'\bkey="[^"]*"|session_state\[\s*"[^"]*"\s*\]|session_state\.(?:get|pop|setdefault)\(\s*"')
    found = [f"{path.name}:{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
             if literal.search(line)]
    assert not found, found
