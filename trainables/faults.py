"""Test-only fault injection: a trial's loss NaN, a raise, a hold or a full disk at an epoch.

Real divergence is hard to provoke on purpose (batch norm keeps even lr=10 finite), a retry
test needs a crash at a known point, and a full disk must strike at a known write. Tests set
`CNN_TUNE_FAULT`; nothing else does.

    CNN_TUNE_FAULT="nan@2"                        loss is NaN in epoch 2 of every trial
    CNN_TUNE_FAULT="nan@2?activation=sigmoid"     ... only of trials whose activation is sigmoid
    CNN_TUNE_FAULT="raise@3?once=/tmp/marker"     RuntimeError in epoch 3, only the first time
                                                  (the marker file records that it fired)
    CNN_TUNE_FAULT="hold@2?until=/tmp/go"         epoch 2 makes /tmp/go.held, then waits until
                                                  /tmp/go exists: a test that stops a driver
                                                  mid-search knows its trials are running,
                                                  however fast they are
    CNN_TUNE_FAULT="fill@1?file=/mnt/small/x"     just before epoch 1's checkpoint is stored,
                                                  fill the filesystem of /mnt/small/x to its
                                                  last byte: that store is the write that fails
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass

ENV_VAR = "CNN_TUNE_FAULT"
KINDS = ("nan", "raise", "hold", "fill")
IN_THE_LOOP = ("nan", "raise", "hold")  # what `trainables.loop` injects; a fill: before a report
HOLD_POLL_S = 0.1  # how often a held epoch looks for its release file


class InjectedFault(RuntimeError):
    """The crash a test asked for."""


@dataclass(frozen=True)
class Fault:
    kind: str  # one of KINDS
    epoch: int
    match: dict[str, str]  # trial config key -> value (as text) the trial must have
    once: str | None = None  # marker file: fire only while it does not exist
    file: str | None = None  # fill: the file that fills its filesystem
    until: str | None = None  # hold: the file whose existence releases the epoch


def parse_fault(text: str) -> Fault:
    head, _, query = text.partition("?")
    kind, _, epoch = head.partition("@")
    if kind not in KINDS or not epoch.isdigit():
        raise ValueError(
            f"{ENV_VAR}={text!r}: expected KIND@EPOCH[?key=value&once=PATH], KIND in {KINDS}"
        )
    options = dict(part.split("=", 1) for part in query.split("&") if part)
    once = options.pop("once", None)
    file = options.pop("file", None)
    until = options.pop("until", None)
    if (kind == "fill") != (file is not None):
        raise ValueError(f"{ENV_VAR}={text!r}: a fill, and only a fill, names its file=PATH")
    if (kind == "hold") != (until is not None):
        raise ValueError(f"{ENV_VAR}={text!r}: a hold, and only a hold, names its until=PATH")
    return Fault(kind=kind, epoch=int(epoch), match=options, once=once, file=file, until=until)


def active_fault(epoch: int, config: dict, kinds: tuple[str, ...] = IN_THE_LOOP) -> str | None:
    """The fault kind (one of `kinds`) to inject in this epoch of this trial, or None (the
    normal case)."""
    text = os.environ.get(ENV_VAR)
    if not text:
        return None
    fault = parse_fault(text)
    if fault.epoch != epoch or fault.kind not in kinds:
        return None
    if any(str(config.get(k)) != v for k, v in fault.match.items()):
        return None
    if fault.once:
        if os.path.exists(fault.once):
            return None
        with open(fault.once, "w") as f:
            f.write(f"{fault.kind}@{epoch}\n")
    return fault.kind


def hold_until_released() -> None:
    """Say that a trial is held (`UNTIL.held`, for the test to wait on: Ray's result log shows
    an epoch seconds late), then wait until the release file `UNTIL` exists."""
    until = parse_fault(os.environ[ENV_VAR]).until or ""
    with open(until + ".held", "a"):
        pass
    while not os.path.exists(until):
        time.sleep(HOLD_POLL_S)


def fill_before_report(epoch: int, config: dict) -> None:
    """Fill the disk here when the test asked for it in this epoch (no-op otherwise)."""
    if active_fault(epoch, config, kinds=("fill",)) == "fill":
        fill_filesystem(parse_fault(os.environ[ENV_VAR]).file or "")


def fill_filesystem(path: str) -> None:
    """Append to `path` until its filesystem has not one byte left: the next write anywhere on
    it fails with a real ENOSPC. Halving the block at each refusal fills the last page too."""
    block = 1 << 20
    with open(path, "ab", buffering=0) as f:
        while block:
            try:
                f.write(b"\0" * block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                block //= 2
