"""What the benchmark scripts share: the CIFAR-10 JPEGs, the output folder, tables, RESULT lines.

Only the standard library and torch at import, so `bench/gpu.py` runs on a GPU host that has
torch and torchvision but neither Ray nor MLflow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# train/<class>/NNNN.jpg: the 50,000 CIFAR-10 training images as JPEGs (ImageFolder layout).
CIFAR_TARBALL = REPO.parent / "shared" / "data" / "cifar10-train-jpeg.tar.gz"
RESULT_LINE = re.compile(r"^RESULT (\w+)=(\S+)$", re.M)


def say(message: str) -> None:
    """Progress on stderr, so stdout holds only the tables and RESULT lines."""
    print(message, file=sys.stderr, flush=True)


class _SayHandler(logging.Handler):
    """Hands each record to `say`, which looks up sys.stderr at call time."""

    def emit(self, record: logging.LogRecord) -> None:
        say(self.format(record))


def show_data_progress() -> None:
    """Put the `cnn-tune data: ...` lines that trainables logs (decoding, caching) on stderr.

    trainables logs through the `cnn_tune` logger and attaches no handler; a script run on its
    own attaches this one, once. Only from `__main__`: tests call `main()` and keep logging as is.
    """
    logger = logging.getLogger("cnn_tune")
    logger.setLevel(logging.INFO)
    if not any(isinstance(handler, _SayHandler) for handler in logger.handlers):
        logger.addHandler(_SayHandler())


@contextlib.contextmanager
def out_dir(path: str | None) -> Iterator[Path]:
    """`--out DIR` (created, kept), or a temporary folder removed at the end."""
    if path is not None:
        folder = Path(path).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="cnn-tune-bench-") as tmp:
        yield Path(tmp)


def unpack_cifar(dest: Path, per_class: int | None = None) -> Path:
    """Unpack the CIFAR-10 JPEG tarball under `dest`; returns the root that holds train/.

    Args:
        dest: an empty folder to unpack into.
        per_class: keep only the first this many images of each class (smoke runs); None: all.
    """
    if not CIFAR_TARBALL.exists():
        raise SystemExit(f"{CIFAR_TARBALL} not found; pass --data-root DIR with train/<class>/*")
    say(f"unpacking {CIFAR_TARBALL} into {dest}")
    kept: dict[str, int] = {}
    with tarfile.open(CIFAR_TARBALL) as tar:
        for member in tar:
            if member.isfile() and per_class is not None:
                label = os.path.dirname(member.name)
                kept[label] = kept.get(label, 0) + 1
                if kept[label] > per_class:
                    continue
            tar.extract(member, dest, filter="data")  # "data": no absolute paths, no links out
    return dest


def machine() -> str:
    """One line: cores, CPU model, torch version, GPU if any, load average."""
    import torch

    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next(
            (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model
        )
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{os.cpu_count()} CPUs ({model}), {gpu}, torch {torch.__version__}, load average {load()}"
    )


def command(script: str, argv: Sequence[str] | None) -> str:
    """How the script was called (`argv` None: this process's), for the output's header."""
    return " ".join([f"bench/{script}", *(sys.argv[1:] if argv is None else argv)])


def load() -> str:
    """The 1/5/15-minute load averages, as `uptime` prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, columns padded so it also reads well in a terminal."""
    cells = [[str(c) for c in header]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def result(name: str, value: float) -> None:
    """The machine-readable headline figure: `RESULT name=value` on stdout."""
    print(f"RESULT {name}={value:.4g}", flush=True)


def parse_results(text: str) -> dict[str, float]:
    """Every `RESULT name=value` line of a script's output."""
    return {name: float(value) for name, value in RESULT_LINE.findall(text)}
