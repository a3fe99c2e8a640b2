"""tune.notify against a real HTTP server on 127.0.0.1: which ends are sent, retries, redaction."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace

import pytest

from tests.tracking_cases import CFG
from tests.webhooks import Webhook
from tune import notify
from tune.commands.common import drive_and_print
from tune.config.schema import NotifySettings
from tune.errors import BadInput, Unreachable
from tune.outcomes import TrialRecord
from tune.paths import redact_credentials, redact_webhook
from tune.summary import summarize
from tune.tracking._conventions import source_name

ARGS = argparse.Namespace(json=False)


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(notify, "BACKOFF_S", 0.05)


def summary_with(error: str | None = None):
    metrics = {"epoch": 3, "val_acc": 0.97, "val_loss": float("nan")}
    record = TrialRecord("t_00000", {"activation": "relu", "lr": 0.003}, metrics, error)
    return summarize(
        [record], name="s1", epochs=3, metric="val_acc", mode="max", searched_keys=["lr"],
        wall_seconds=5.0, storage_path="/r", experiment_path="/r/s1",
    )  # fmt: skip


def cfg_for(url: str, on=None):
    settings = NotifySettings(webhook=url) if on is None else NotifySettings(url, on)
    return replace(CFG, notify=settings)


def test_a_finished_search_posts_its_summary_and_one_line_of_text():
    with Webhook() as hook:
        code = drive_and_print(lambda: summary_with(), ARGS, cfg_for(hook.url))
    assert code == 0
    [body] = hook.bodies
    assert body["event"] == "finished" and body["exit_code"] == 0 and body["name"] == "s1"
    assert body["text"].startswith("cnn-tune search 's1' finished: 1 trials; best t_00000")
    assert "\n" not in body["text"]
    assert body["summary"]["best"]["trial_id"] == "t_00000"
    assert body["summary"]["trial_results"][0]["val_loss"] is None  # NaN sent as null


def test_each_exit_is_its_event_and_2_and_4_send_nothing():
    with Webhook() as hook:
        cfg = cfg_for(hook.url)
        assert drive_and_print(lambda: summary_with("boom"), ARGS, cfg) == 1

        def interrupted():
            raise KeyboardInterrupt

        assert drive_and_print(interrupted, ARGS, cfg) == 130
        for error in (Unreachable("MLflow at http://x:5000 did not answer"), BadInput("bad key")):

            def fails(error=error):
                raise error

            with pytest.raises(type(error)):
                drive_and_print(fails, ARGS, cfg)
    assert [(b["event"], b["exit_code"]) for b in hook.bodies] == [
        ("failed", 1), ("interrupted", 130), ("failed", 3),
    ]  # fmt: skip
    assert hook.bodies[2]["error"].startswith("MLflow at") and hook.bodies[2]["summary"] is None


def test_only_the_chosen_ends_are_sent():
    with Webhook() as hook:
        drive_and_print(lambda: summary_with(), ARGS, cfg_for(hook.url, on=["failed"]))
        drive_and_print(lambda: summary_with("boom"), ARGS, cfg_for(hook.url, on=["failed"]))
    assert [b["event"] for b in hook.bodies] == ["failed"]


def test_a_server_that_fails_twice_gets_a_third_try():
    with Webhook(answers=[500, 500]) as hook:
        assert drive_and_print(lambda: summary_with(), ARGS, cfg_for(hook.url)) == 0
    assert len(hook.bodies) == 3 and hook.bodies[0] == hook.bodies[2]


def test_a_dead_webhook_is_a_warning_that_names_no_secret(caplog):
    with Webhook(answers=[500, 500, 500]) as hook:
        with caplog.at_level(logging.WARNING, logger="cnn_tune"):
            assert drive_and_print(lambda: summary_with(), ARGS, cfg_for(hook.url)) == 0
    assert len(hook.bodies) == 3
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "after 3 tries (HTTP 500)" in warning and "SECRET" not in warning
    refused = f"http://127.0.0.1:{hook.server.server_port}/gone/SECRET"  # the server is down
    assert not notify.notify_end(NotifySettings(refused), "s1", 0, None)


def test_the_webhook_is_redacted_wherever_it_is_shown():
    url = "https://hooks.slack.com/services/T0/B0/SECRET"
    assert redact_webhook(url) == "https://hooks.slack.com/***"
    plain = cfg_for(url).to_dict()
    assert plain["notify"]["webhook"] == url  # the saved config keeps it, for a resume
    assert "SECRET" not in str(redact_credentials(plain))
    argv = ["cnn-tune", "run", "x.yaml", "--set", f"notify.webhook={url}"]
    assert "SECRET" not in source_name(argv) and "notify.webhook=***" in source_name(argv)
