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
    tracking = imported_names(MODULES["tune.tracking.tracker"])
    assert not any(name.split(".")[0] == "ray" for name in tracking)
    assert "tune.tracking.artifacts" not in tracking and "tune.fit.callbacks" not in tracking


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


FLAT_LIMIT = 20  # modules directly in tune/, beside its packages
MLFLOW_HOME = "tune.tracking"


def test_at_most_twenty_modules_stay_flat_in_tune():
    flat = sorted(p.stem for p in (REPO / "tune").glob("*.py") if p.stem != "__init__")
    assert len(flat) <= FLAT_LIMIT, f"{len(flat)} flat modules in tune/: {flat}"


@pytest.mark.parametrize("package", ["tune.tracking", "tune.config", "tune.fit", "tune.commands"])
def test_each_package_init_says_what_lives_there_and_what_it_may_import(package):
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text())) or ""
    assert "import" in doc, f"{package}/__init__ does not say what it may import"


def test_only_the_tracking_package_imports_mlflow():
    for name, path in MODULES.items():
        if name == MLFLOW_HOME or name.startswith(MLFLOW_HOME + "."):
            continue
        roots = {imported.split(".")[0] for imported in imported_names(path)}
        assert "mlflow" not in roots, f"{name} imports mlflow: only {MLFLOW_HOME} may"


def test_the_ray_side_and_the_config_import_nothing_of_tracking():
    for name, path in MODULES.items():
        if name.startswith(("tune.fit", "tune.config")):  # the Ray side, callbacks included
            found = {n for n in imported_names(path) if n.split(".")[0] == "mlflow"}
            found |= {n for n in imported_names(path) if n.startswith(MLFLOW_HOME)}
            assert not found, f"{name} imports {sorted(found)}"


# Modules with logic but no test module of their own, and why.
UNTESTED_ALONE = {
    "trainables.ray_trainable": "Ray's function trainable: every scenario in tests/scenarios runs "
    "it on a real Ray, and tests/trainables/test_loop.py tests the loop it wraps",
}


def test_every_module_with_logic_has_its_test_module():
    # tests/<package>/test_<module>.py, so a failure names the piece that broke.
    missing = []
    for name, path in MODULES.items():
        if path.name == "__init__.py" or name in UNTESTED_ALONE:
            continue
        relative = path.relative_to(REPO)
        test = REPO / "tests" / relative.parent / f"test_{path.stem.lstrip('_')}.py"
        if not test.exists():
            missing.append(f"{name} (expected {test.relative_to(REPO)})")
    assert not missing, missing


def test_the_config_imports_nothing_of_the_ray_side():
    # Validation reads the searcher and scheduler names from tune.config.searchers; the Ray
    # side (tune.fit) builds them and may import the config, never the other way round.
    for name, path in MODULES.items():
        if name.startswith("tune.config"):
            found = {n for n in project_imports(path) if n.startswith("tune.fit")}
            assert not found, f"{name} imports {sorted(found)}"


def test_outside_code_uses_the_tracking_surface_not_its_private_modules():
    for name, path in MODULES.items():
        if name.startswith(MLFLOW_HOME):
            continue
        private = {n for n in imported_names(path) if n.startswith(MLFLOW_HOME + "._")}
        assert not private, f"{name} imports {sorted(private)}"


def package_aware_imports(path: Path, name: str) -> set[str]:
    """Project imports plus the packages whose __init__ an import runs: importing
    `tune.tracking.runs` from outside runs `tune/tracking/__init__`, which can close a cycle."""
    found = project_imports(path)
    for imported in list(found):
        parts = imported.split(".")
        for depth in range(1, len(parts)):
            package = ".".join(parts[:depth])
            if package in MODULES and not name.startswith(package + ".") and name != package:
                found.add(package)
    return found - {name}


def test_no_import_cycle_through_the_packages_inits():
    graph = {name: package_aware_imports(path, name) for name, path in MODULES.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


TESTS = REPO / "tests"


def test_no_test_file_imports_another():
    # Shared helpers live in fixtures (conftest.py) or helper modules, never in a test file.
    test_files = {module_name(p) for p in TESTS.rglob("test_*.py")}
    for path in sorted(TESTS.rglob("*.py")):
        crossing = imported_names(path) & test_files
        assert not crossing, f"{path.relative_to(REPO)} imports {sorted(crossing)}"


# --- one home for each small rule: no other module repeats it -----------------------------------

# (what the source may not hold, the one module where it lives, and what else may, and why)
RULE_HOMES = [
    # write-temp-then-replace: `trainables.files.atomic_write`
    ("os.replace(", "trainables.files", {}),
    # a file's SHA-256: `trainables.files.sha256_file`; these hash data, not a file
    ("hashlib.sha256(", "trainables.files", {
        "trainables.cache": "the cache key: a digest of the build request's JSON",
        "trainables.datasets": "an ImageFolder's identity: a digest of its names, sizes, times",
        "tune.disk_full": "the kept state's folder: a digest of the experiment folder's path",
    }),
    # better by mode: `tune.metrics.better` / `best_of` / `best_first`
    ('mode == "max"', "tune.metrics", {
        "tune.analysis": "the mode as Optuna's study direction and a sign for the Pareto front",
        "tune.tracking.plots": "the heatmap's colour map runs the way the mode does",
    }),
    # a finite metric value: `tune.metrics.is_finite_number`
    ("isinstance(value, (int, float))", "tune.metrics", {
        "tune.config.validation": "a config value's type (an int or a float), not a metric",
    }),
    # the warm start's "optuna or not": `tune.warm_start.seeds_the_searcher`, nowhere else
    ('algorithm != "optuna"', None, {}),
]  # fmt: skip


@pytest.mark.parametrize("text, home, allowed", RULE_HOMES, ids=[r[0] for r in RULE_HOMES])
def test_each_small_rule_lives_in_one_module(text, home, allowed):
    holders = {name for name, path in MODULES.items() if text in path.read_text()}
    assert home is None or home in holders, f"{home} no longer holds {text!r}"
    stray = holders - {home} - set(allowed)
    assert not stray, f"{sorted(stray)} repeat {text!r}: use {home}"
