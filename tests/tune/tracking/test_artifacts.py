"""tune.tracking.artifacts: the warm-up of the end of a search (the rest is covered end to end in
test_mlflow_e2e.py and test_runs.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_the_warm_up_loads_what_the_end_of_a_search_needs():
    code = (
        "import sys, torch\n"
        "assert 'torch._dynamo' not in sys.modules  # torch.export starts it on first use\n"
        "from tune.tracking.artifacts import warm_up_search_end\n"
        "warm_up_search_end()\n"
        "wanted = {'torch._dynamo', 'torchvision', 'mlflow.pytorch', 'sklearn.ensemble'}\n"
        "print(sorted(wanted & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "['mlflow.pytorch', 'sklearn.ensemble', 'torch._dynamo', 'torchvision']" in out.stdout


def test_a_failed_warm_up_is_not_an_error(monkeypatch):
    import torch

    from tune.tracking.artifacts import warm_up_search_end

    def broken(*_args, **_kwargs):
        raise RuntimeError("no export on this build")

    monkeypatch.setattr(torch.export, "export", broken)
    warm_up_search_end()  # returns: the end of the search pays the cost instead
