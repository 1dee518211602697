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
    "recorded": set(),
    "data": {"files"},
    "models": set(),
    "checkpoint": {"files", "data", "models"},
    "analysis": {"files", "recorded", "data", "models", "checkpoint"},
    "interop": {"files", "data", "models", "checkpoint"},
    "training": {"files", "recorded", "data", "models", "checkpoint", "analysis"},
    "cli": {"files", "recorded", "data", "models", "checkpoint", "analysis", "training", "interop"},
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
