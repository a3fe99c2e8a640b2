"""README's two opening commands stay true: CI runs exactly the test one."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def command_lines(text: str) -> list[str]:
    return [
        line.strip() for line in text.splitlines() if line.strip().startswith("python3 -m venv")
    ]


def test_ci_runs_the_readme_test_command():
    readme = command_lines((REPO / "README.md").read_text())
    ci = command_lines((REPO / ".ci" / "run").read_text())
    assert len(readme) >= 2, "README must open with the demo and the test command"
    assert ci and ci[0] == readme[1]
    assert "pytest" in readme[1]
    assert "cnn-tune run configs/demo.yaml" in readme[0]
