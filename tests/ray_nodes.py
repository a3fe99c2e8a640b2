"""Real Ray nodes for the tests, started with `ray start` as an operator would: a head, a
second node, and their stop (this cluster's processes only)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import REPO
from tests.servers import free_port

BIN = Path(sys.executable).parent


def env() -> dict[str, str]:
    # Ray's nodes and job entrypoints find `cnn-tune` and this checkout through these.
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {
        **os.environ,
        "PATH": path,
        "PYTHONPATH": str(REPO),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",  # a throwaway loopback cluster: no token to hand around
    }


def ray(
    *args: str, timeout: float = 120, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "ray"), *args],
        env={**env(), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def own_ports() -> list[str]:
    # Two nodes on one machine: each needs its own agent ports (the defaults would collide).
    return [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
    ]


def start_head(
    temp: Path, cpus: int, resource: str, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """`ray start --head` with its dashboard and job server on 127.0.0.1; `extra_env` reaches
    its raylet and so every worker it starts."""
    port, dashboard = free_port(), free_port()
    head = ray(
        "start", "--head", f"--port={port}", f"--num-cpus={cpus}",
        f'--resources={{"{resource}": 1}}',
        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
        f"--temp-dir={temp}", "--disable-usage-stats", *own_ports(), extra_env=extra_env,
    )  # fmt: skip
    assert head.returncode == 0, head.stderr
    return {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dashboard}"}


@contextlib.contextmanager
def ray_temp_dir() -> Iterator[Path]:
    """A short `--temp-dir` for a test cluster, removed after: Ray's AF_UNIX sockets live under
    it and may not exceed 107 bytes, which pytest's basetemp (`/tmp/pytest-of-USER/pytest-103/
    ...`, longer with every run on a machine) plus Ray's session folder did."""
    temp = Path(tempfile.mkdtemp(prefix="ray-"))
    try:
        yield temp
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def stop_nodes(temp: Path) -> None:
    """Stop this cluster's processes only (`ray stop` would stop every Ray on the machine):
    those whose command line names its temp dir."""
    ours = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(temp) in cmdline:
            ours.append(int(entry.name))
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in ours:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        # Throwaway nodes: a second is enough grace (some Ray daemons never exit on SIGTERM).
        deadline = time.monotonic() + 1
        while ours and time.monotonic() < deadline:
            ours = [pid for pid in ours if alive(pid)]
            time.sleep(0.1)


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
