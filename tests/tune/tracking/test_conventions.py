"""tune.tracking._conventions: the MLflow tags its UI reads (source, user, commit)."""

from __future__ import annotations

import getpass

from tune.tracking._conventions import source_name, source_tags


def test_source_tags_name_the_user_the_command_and_the_commit():
    argv = ["/venv/bin/cnn-tune", "run", "configs/demo.yaml", "--set", "epochs=2"]
    tags = source_tags("abc123", argv)
    assert tags == {
        "mlflow.user": getpass.getuser(),
        "mlflow.source.name": "cnn-tune run configs/demo.yaml --set epochs=2",
        "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": "abc123",
    }
    assert "mlflow.source.git.commit" not in source_tags(None, argv)


def test_source_name_redacts_a_password_and_names_library_use():
    argv = ["cnn-tune", "run", "x.yaml", "--set", "mlflow.tracking_uri=http://ann:s3cret@h:5000"]
    assert "s3cret" not in source_name(argv) and "ann:***@h:5000" in source_name(argv)
    assert source_name(["/usr/bin/pytest", "-q"]) == "cnn-tune"  # called as a library
    assert source_name(["/repo/tune/cli.py", "report", "s1"]) == "cnn-tune report s1"
