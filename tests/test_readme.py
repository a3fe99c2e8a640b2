"""README's two opening commands stay true: CI runs exactly the test one."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def opening_commands(text: str) -> list[str]:
    """The first command line of each fenced bash block, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks:
        lines = [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
        commands.append(lines[0])
    return commands


def test_ci_runs_the_readme_test_command():
    demo, test = opening_commands((REPO / "README.md").read_text())[:2]
    assert "cnn-tune run configs/demo.yaml" in demo
    assert demo.startswith("python3 -m venv .venv && .venv/bin/pip install -e .")
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test in ci, f"{test!r} must be a line of .ci/run"
    assert (REPO / test.split()[-1]).exists()


def test_the_test_script_installs_and_runs_pytest():
    script = (REPO / "scripts" / "test.sh").read_text()
    assert "python3 -m venv .venv" in script
    assert "pip install -q -e '.[dev]'" in script
    assert "pytest" in script


def test_the_development_table_names_every_module():
    readme = (REPO / "README.md").read_text()
    for package in ("tune", "trainables"):
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if path.name == "__init__.py":
                continue
            folder = f"{path.parent.relative_to(REPO).as_posix()}/"
            assert f"`{rel}`" in readme or f"`{folder}`" in readme, f"{rel} is not in README"
