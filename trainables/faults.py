"""Test-only fault injection: make one trial's loss NaN or raise at a chosen epoch.

Real divergence is hard to provoke on purpose (batch norm keeps even lr=10 finite), and a
retry test needs a crash at a known point. Tests set `CNN_TUNE_FAULT`; nothing else does.

    CNN_TUNE_FAULT="nan@2"                        loss is NaN in epoch 2 of every trial
    CNN_TUNE_FAULT="nan@2?activation=sigmoid"     ... only of trials whose activation is sigmoid
    CNN_TUNE_FAULT="raise@3?once=/tmp/marker"     RuntimeError in epoch 3, only the first time
                                                  (the marker file records that it fired)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV_VAR = "CNN_TUNE_FAULT"
KINDS = ("nan", "raise")


class InjectedFault(RuntimeError):
    """The crash a test asked for."""


@dataclass(frozen=True)
class Fault:
    kind: str  # nan | raise
    epoch: int
    match: dict[str, str]  # trial config key -> value (as text) the trial must have
    once: str | None = None  # marker file: fire only while it does not exist


def parse_fault(text: str) -> Fault:
    head, _, query = text.partition("?")
    kind, _, epoch = head.partition("@")
    if kind not in KINDS or not epoch.isdigit():
        raise ValueError(
            f"{ENV_VAR}={text!r}: expected KIND@EPOCH[?key=value&once=PATH], KIND in {KINDS}"
        )
    options = dict(part.split("=", 1) for part in query.split("&") if part)
    once = options.pop("once", None)
    return Fault(kind=kind, epoch=int(epoch), match=options, once=once)


def active_fault(epoch: int, config: dict) -> str | None:
    """The fault kind to inject in this epoch of this trial, or None (the normal case)."""
    text = os.environ.get(ENV_VAR)
    if not text:
        return None
    fault = parse_fault(text)
    if fault.epoch != epoch:
        return None
    if any(str(config.get(k)) != v for k, v in fault.match.items()):
        return None
    if fault.once:
        if os.path.exists(fault.once):
            return None
        with open(fault.once, "w") as f:
            f.write(f"{fault.kind}@{epoch}\n")
    return fault.kind
