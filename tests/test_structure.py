"""The shape of the code, read from its source: no import cycle, `trainables` free of `tune`, Ray
and MLflow, and small modules that each say their one job on their first line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("tune", "trainables")
MAX_LINES = 450  # every line counted
SOURCES = sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SOURCES}


def imported_names(path: Path) -> set[str]:
    """Every module a file imports, wherever the import is: top level, inside functions, under
    `if TYPE_CHECKING:`. `from pkg import mod` counts as importing `pkg.mod` when that is a
    module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def project_imports(path: Path) -> set[str]:
    return {name for name in imported_names(path) if name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_among_the_project_modules():
    # A package imports its modules only through its __init__, which none of ours does.
    graph = {name: project_imports(path) - {name} for name, path in MODULES.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_trainables_imports_no_tune_and_only_its_ray_trainable_touches_ray_or_mlflow():
    for name, path in MODULES.items():
        if not name.startswith("trainables"):
            continue
        roots = {imported.split(".")[0] for imported in imported_names(path)}
        assert "tune" not in roots, f"{name} imports tune"
        if name != "trainables.ray_trainable":
            assert not roots & {"ray", "mlflow"}, f"{name} imports {roots & {'ray', 'mlflow'}}"


def test_tracking_imports_no_ray_and_artifacts_is_not_imported_by_it():
    tracking = imported_names(MODULES["tune.tracking"])
    assert not any(name.split(".")[0] == "ray" for name in tracking)
    assert "tune.artifacts" not in tracking and "tune.callbacks" not in tracking


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_is_small_and_says_its_one_job_first(name):
    path = MODULES[name]
    text = path.read_text()
    lines = text.count("\n") + (not text.endswith("\n"))
    assert lines <= MAX_LINES, f"{name} has {lines} lines (limit {MAX_LINES})"
    doc = ast.get_docstring(ast.parse(text), clean=False)
    assert doc, f"{name} has no module docstring"
    first, _, rest = doc.strip().partition("\n")
    assert first.strip() and len(first) <= 100, f"{name}: {first!r}"
    # The first line is the whole summary: a blank line (or nothing) follows it.
    assert not rest or rest.startswith("\n"), f"{name}: the summary runs past its first line"
