"""MLflow's own tag conventions, which its UI reads: source, user, git commit, description.

MLflow fills these itself only for runs made through `mlflow.start_run` in a script; ours are
made through `MlflowClient` from a console script, so they are set here, once, for every run.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import subprocess
import sys

from tune.paths import redact_uri

USER = "mlflow.user"
SOURCE_NAME = "mlflow.source.name"
SOURCE_TYPE = "mlflow.source.type"
GIT_COMMIT = "mlflow.source.git.commit"
NOTE = "mlflow.note.content"  # the run's description in the UI, Markdown
LOCAL = "LOCAL"  # MLflow's SourceType for a command run on a machine (not a notebook, a project)
CLI_NAMES = ("cnn-tune", "cli.py")  # sys.argv[0] of the console script, of `python -m tune.cli`
WEBHOOK_SET = re.compile(r"^(notify\.webhook=).+")  # --set notify.webhook=URL: a credential


def git_commit() -> str | None:
    """The project's git commit when it runs from a checkout; None otherwise.

    Read from this package's folder, not the working directory: the console script's own path
    is a virtual environment's bin folder, where MLflow's own lookup finds no repository.
    """
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(
            ["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def os_user() -> str:
    """The OS user; MLflow would take MLFLOW_TRACKING_USERNAME, a credential, where it is set."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return str(os.getuid())


def source_name(argv: list[str] | None = None) -> str:
    """The command that made the runs (`cnn-tune run configs/demo.yaml --set ...`), any password
    in it redacted; plain `cnn-tune` when the driver was called as a library."""
    argv = sys.argv if argv is None else argv
    if not argv or os.path.basename(argv[0]) not in CLI_NAMES:
        return "cnn-tune"
    words = [WEBHOOK_SET.sub(r"\1***", word) for word in argv[1:]]
    return redact_uri(shlex.join(["cnn-tune", *words]))


def source_tags(commit: str | None, argv: list[str] | None = None) -> dict[str, str]:
    """The tags every run of a search carries: who ran what, from which commit."""
    tags = {USER: os_user(), SOURCE_NAME: source_name(argv), SOURCE_TYPE: LOCAL}
    if commit:
        tags[GIT_COMMIT] = commit
    return tags
