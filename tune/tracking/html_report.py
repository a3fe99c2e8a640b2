"""`cnn-tune report NAME --html OUT.html`: one self-contained page to mail after a search.

Read from MLflow like `cnn-tune report`: the parent's note (its Markdown rendered), the trials
table, every plot of the parent run and of the best trial's run embedded as data URIs (nothing is
loaded from the network), and links to the runs when the tracking URI is a server. A search
still running gets the same page with what it has so far.
"""

from __future__ import annotations

import base64
import html
import os
import re
import tempfile
from typing import Any

from tune.paths import is_server_uri, redact_uri
from tune.summary import Summary
from tune.tracking._conventions import NOTE

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; }
code, pre { background: #f6f6f6; font-family: ui-monospace, monospace; }
pre { padding: 0.6em; white-space: pre-wrap; overflow-wrap: anywhere; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 520px; border: 1px solid #ddd; }
figcaption { font-size: 12px; color: #555; }
"""
_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
]


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def markdown_to_html(text: str) -> str:
    """The Markdown our notes use (`tune.tracking._notes`): paragraphs, pipe tables, fenced code,
    `code` and **bold**. Not a general Markdown renderer, and escapes everything else."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
            end = len(lines) if end is None else end
            out.append(f"<pre><code>{html.escape(chr(10).join(lines[i + 1 : end]))}</code></pre>")
            i = end + 1
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            rows = [r for r in block if not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", r.strip())]
            head, *body = rows
            head_cells = "".join(f"<th>{_inline(c)}</th>" for c in _cells(head))
            parts = ["<table>", f"<tr>{head_cells}</tr>"]
            for row in body:
                parts.append(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(row)) + "</tr>"
                )
            out.append("\n".join(parts) + "\n</table>")
        elif line.strip():
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("|", "```")):
                para.append(lines[i])
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
        else:
            i += 1
    return "\n".join(out)


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page in the MLflow UI, where the tracking URI is a server (else None)."""
    if not is_server_uri(tracking_uri):
        return None
    base = redact_uri(tracking_uri).rstrip("/")
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def embed_plots(client: Any, run_id: str, tmp: str) -> list[tuple[str, str]]:
    """(artifact path, data URI) of every PNG under the run's `plots/`."""
    figures = []
    for item in client.list_artifacts(run_id, "plots"):
        if item.is_dir or not item.path.endswith(".png"):
            continue
        local = client.download_artifacts(run_id, item.path, tmp)
        with open(local, "rb") as f:
            data = base64.b64encode(f.read()).decode()
        figures.append((item.path, f"data:image/png;base64,{data}"))
    return figures


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def trials_table(summary: Summary, links: dict[str, str | None]) -> str:
    """Every trial, linked to its run where there is a server to link to."""
    keys, metric = summary.searched_keys, summary.metric
    columns = ["trial", *keys, "outcome", "epochs", metric, "test_acc"]
    head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"
    rows = []
    for row in summary.trials:
        trial = html.escape(row["trial_id"])
        if links.get(row["trial_id"]):
            trial = f'<a href="{html.escape(links[row["trial_id"]])}">{trial}</a>'
        cells = [*(row["config"].get(k) for k in keys), row["outcome"], row["epochs"]]
        cells += [row.get(metric), row.get("test_acc")]
        shown = [_show(c) for c in cells]
        rows.append(
            f'<tr class="trial"><td>{trial}</td>'
            + "".join(f"<td>{html.escape(c)}</td>" for c in shown)
            + "</tr>"
        )
    return f'<table id="trials">{head}\n' + "\n".join(rows) + "</table>"


def write_html_report(tracking_uri: str, experiment: str, name: str, out: str) -> str:
    """Write the search's report to `out` (one HTML file); returns its absolute path."""
    from tune.tracking.report import read_search, summary_of_runs

    # MLflow draws a progress bar per download on stderr: noise in a scheduled job's log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client, parent, children = read_search(tracking_uri, experiment, name)
    summary = summary_of_runs(client, parent, children, tracking_uri, name)
    experiment_id, parent_id = parent.info.experiment_id, parent.info.run_id
    run_of = {c.data.tags.get("cnn_tune.trial_id"): c.info.run_id for c in children}
    links = {t: run_link(tracking_uri, experiment_id, r) for t, r in run_of.items()}
    links = {t: link for t, link in links.items() if link}
    parent_link = run_link(tracking_uri, experiment_id, parent_id)
    with tempfile.TemporaryDirectory() as tmp:
        figures = embed_plots(client, parent_id, tmp)
        best = summary.best["trial_id"] if summary.best else None
        if best in run_of:
            best_figures = embed_plots(client, run_of[best], tmp)
            figures += [(f"best trial {best}: {p}", uri) for p, uri in best_figures]
    note = parent.data.tags.get(NOTE, f"Search `{name}`.")
    status = parent.info.status
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>cnn-tune report: {html.escape(name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Search {html.escape(name)}</h1>",
        f'<p id="status">MLflow status: <strong>{html.escape(status)}</strong>'
        + (f' (<a href="{html.escape(parent_link)}">open in MLflow</a>)' if parent_link else "")
        + "</p>",
        f'<section id="note">{markdown_to_html(note)}</section>',
        f"<h2>Trials ({len(summary.trials)})</h2>",
        trials_table(summary, links),
        "<h2>Plots</h2>",
    ]
    if figures:
        parts += [
            f'<figure><img alt="{html.escape(p)}" src="{uri}"><figcaption>{html.escape(p)}'
            "</figcaption></figure>"
            for p, uri in figures
        ]
    else:
        parts.append("<p>No plots yet: they are drawn when the search ends.</p>")
    parts.append("</body></html>")
    path = os.path.abspath(out)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))
    return path
