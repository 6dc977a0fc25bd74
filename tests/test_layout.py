"""The package's layout holds: no import cycles, rooms a reader can hold, a short public API."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tpdoc

PACKAGE = Path(tpdoc.__file__).resolve().parent
MAX_LINES = 450  # the house rule says ~400; this is where "about" ends


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The tpdoc modules ``path`` imports, at any depth of its code (lazy imports too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c in modules and c != name)
    return found


def test_no_module_imports_one_that_imports_it_back():
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports_of(path, set(paths)) for name, path in paths.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                if nxt == goal:
                    return True
                seen.add(nxt)
                todo.append(nxt)
        return False

    cycles = sorted(f"{a} -> {b}" for a in graph for b in graph[a] if reaches(b, a))
    assert cycles == []


def test_no_module_is_longer_than_a_reader_can_hold():
    long = {
        module_name(p): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_public_api_is_importable_from_tpdoc_without_loading_torch():
    code = (
        "import sys, tpdoc\n"
        "assert 'torch' not in sys.modules, 'import tpdoc loaded torch'\n"
        "missing = [n for n in tpdoc.__all__ if getattr(tpdoc, n, None) is None]\n"
        "assert not missing, missing\n"
        "from tpdoc.answering.qa import DocumentQA\n"
        "assert tpdoc.DocumentQA is DocumentQA\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
