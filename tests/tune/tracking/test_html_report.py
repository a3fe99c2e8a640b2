"""tune.tracking.html_report: the note's Markdown as HTML, links, and a report from a real SQLite
store.
The page in a real browser: tests/scenarios/test_mlflow_e2e.py."""

from __future__ import annotations

import re

from tests.tracking_cases import CFG, run_trials
from tune.tracking.html_report import markdown_to_html, run_link, write_html_report
from tune.tracking.tracker import Tracker


def test_markdown_of_the_notes_becomes_html_and_nothing_else_runs():
    text = "\n".join(
        [
            "**Search `s1`** ended: 2 trials <script>alert(1)</script>",
            "",
            "| | |",
            "|---|---|",
            "| space | `lr`: a\\|b |",
            "",
            "```",
            "cnn-tune train --set 'x=<y>'",
            "```",
        ]
    )
    out = markdown_to_html(text)
    assert "<p><strong>Search <code>s1</code></strong> ended" in out
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<tr><td>space</td><td><code>lr</code>: a|b</td></tr>" in out  # an escaped pipe
    assert "<pre><code>cnn-tune train --set &#x27;x=&lt;y&gt;&#x27;</code></pre>" in out


def test_links_only_where_there_is_a_server():
    assert run_link("sqlite:///m.db", "1", "abc") is None
    assert (
        run_link("http://ann:pw@h:5000/", "1", "abc")
        == "http://ann:***@h:5000/#/experiments/1/runs/abc"
    )


def test_report_of_a_search_read_from_mlflow(store, tmp_path):
    from tune.tracking._explain import explain_search

    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    tracker.start_search(CFG, "name: s1\n")
    summary, histories = run_trials(tracker, 6)
    tracker.send_inline()
    # While it runs: the running note, every trial, no plots yet.
    running = write_html_report(uri, "cnn-tune", "s1", str(tmp_path / "running.html"))
    page = open(running).read()
    assert "running." in page and "No plots yet" in page
    assert len(re.findall(r'<tr class="trial">', page)) == 6

    explain_search(tracker, CFG, summary, histories)
    tracker.finish_search({}, "FINISHED")
    page = open(write_html_report(uri, "cnn-tune", "s1", str(tmp_path / "done.html"))).read()
    assert "ended: 6 trials" in page and "MLflow status: <strong>FINISHED" in page
    assert page.count('src="data:image/png;base64,') == 2  # importance and cost
    assert "http" not in page.replace("http-equiv", "")  # nothing from the network, no links
