"""How long `cnn-tune list` takes on many experiments (issue 14: "fast on 100 experiments").

Makes N experiments the way a search leaves them on local storage (a saved config, an MLflow
run map of 16 trials, a lock file), without running them, then times `list_experiments` and
the whole `cnn-tune list --json` command.

    python bench/list.py [--experiments 100] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from any folder
from bench.common import load, machine, out_dir, result  # noqa: E402
from tune.config.schema import SearchConfig, dump_search_config  # noqa: E402
from tune.config.space import Choice  # noqa: E402
from tune.lock import experiment_lock  # noqa: E402
from tune.paths import saved_config_path, state_dir  # noqa: E402
from tune.tracking import RUN_MAP_FILE, RunMap, TrialRun  # noqa: E402

TRIALS = 16  # per experiment's run map
REPEATS = 5


def make(storage: Path, count: int) -> None:
    base = SearchConfig(name="x", dataset="mnist5k", space={"activation": Choice(["relu", "tanh"])})
    for i in range(count):
        name = f"search-{i:03d}"
        cfg = replace(base, name=name, storage_path=str(storage))
        folder = state_dir(str(storage), name)
        with experiment_lock(folder, name):  # leaves the lock and owner files, as a driver does
            dump_search_config(cfg, saved_config_path(str(storage), name))
            trials = {
                f"t{j:05d}": TrialRun(f"run{j}", 4, "FINISHED", "completed", 0.9 + j / 1000)
                for j in range(TRIALS)
            }
            runs = RunMap("sqlite:///m.db", "1", f"parent{i}", trials, status="FINISHED")
            runs.save(os.path.join(folder, RUN_MAP_FILE))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=100)
    parser.add_argument("--out", help="keep the experiments here (default: temp)")
    args = parser.parse_args(argv)
    from tune.commands.folders import list_experiments

    print(f"machine: {machine()}")
    with out_dir(args.out) as out:
        storage = Path(out) / "ray_results"
        make(storage, args.experiments)
        times = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            listed = list_experiments(str(storage))
            times.append(time.perf_counter() - t0)
        assert len(listed) == args.experiments
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tune.cli", "list", "--json", "--storage-path", str(storage)],
            check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        command = time.perf_counter() - t0
    best = min(times)
    print(f"{args.experiments} experiments: list_experiments {best * 1000:.0f} ms (best of "
          f"{REPEATS}), the whole `cnn-tune list --json` {command:.2f} s")  # fmt: skip
    print(f"load average at the end: {load()}")
    result("list_ms", best * 1000)
    result("list_command_s", command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
