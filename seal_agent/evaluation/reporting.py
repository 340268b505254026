"""Write a run's results: a Markdown table mirroring the papers' columns, a JSON summary
and a PNG figure, all under the run's output folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seal_agent.evaluation.metrics import SEARCH_METRICS, RowSummary, Stat

TABLE_FILE = "table.md"
SUMMARY_FILE = "summary.json"
FIGURE_FILE = "figure.png"

_SEARCH_HEADERS = {
    "targets_found": "found %",
    "targets_localised": "IoU>0.5 %",
    "patches_per_question": "patches/q",
    "passes_per_question": "passes/q",
    "search_length": "search length",
    "seconds_per_question": "s/q",
    "peak_gpu_mb": "peak GPU MB",
}


def _cell(stat: Stat | None, digits: int = 2) -> str:
    if stat is None:
        return "–"
    if len(stat.values) > 1:
        return f"{stat.mean:.{digits}f} ± {stat.std:.{digits}f}"
    return f"{stat.mean:.{digits}f}"


def markdown_table(rows: Sequence[RowSummary], title: str = "") -> str:
    """The accuracy columns of the benchmark, then the search and cost columns."""
    columns: list[str] = []
    for row in rows:
        for column in row.accuracy:
            if column not in columns:
                columns.append(column)
    if "overall" in columns:  # always last, as in the papers
        columns.remove("overall")
        columns.append("overall")
    header = ["system", *columns, *(_SEARCH_HEADERS[m] for m in SEARCH_METRICS)]
    lines = []
    if title:
        lines += [title, ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.system]
        cells += [_cell(row.accuracy.get(c)) for c in columns]
        cells += [
            _cell(row.search.get(m), 3 if m == "seconds_per_question" else 2)
            for m in SEARCH_METRICS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if rows:
        seeds = rows[0].seeds
        lines += [
            "",
            f"{rows[0].items} items per seed; seeds {seeds}"
            + ("; mean ± standard deviation over seeds" if len(seeds) > 1 else ""),
        ]
    return "\n".join(lines) + "\n"


def write_figure(rows: Sequence[RowSummary], path: Path, title: str = "") -> Path:
    """Accuracy per subset against mean patches per question, and search-length histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    markers = "osD^v<>p*h"
    for index, row in enumerate(rows):
        patches = row.search.get("patches_per_question")
        x = patches.mean if patches is not None else 0.0
        for k, (column, stat) in enumerate(row.accuracy.items()):
            left.scatter(
                x,
                stat.mean,
                marker=markers[k % len(markers)],
                color=f"C{index}",
                label=f"{row.system}: {column}",
            )
        if row.search_lengths:
            right.hist(
                row.search_lengths,
                bins=[b - 0.5 for b in range(1, max(row.search_lengths) + 2)],
                alpha=0.5,
                color=f"C{index}",
                label=row.system,
            )
    left.set_xlabel("mean patches scored per question")
    left.set_ylabel("accuracy (%)")
    left.set_ylim(-2, 102)
    left.set_title("accuracy per subset")
    left.legend(fontsize=7)
    right.set_xlabel("search length (patches scored, successful searches)")
    right.set_ylabel("searches")
    right.set_title("distribution of search lengths")
    if any(row.search_lengths for row in rows):
        right.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    out: Path, rows: Sequence[RowSummary], manifest: dict[str, Any], title: str = ""
) -> dict[str, Path]:
    """``table.md``, ``summary.json`` and ``figure.png`` under ``out``."""
    table = markdown_table(rows, title)
    (out / TABLE_FILE).write_text(table, encoding="utf-8")
    summary = {"run": manifest, "rows": [row.model_dump() for row in rows]}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    figure = write_figure(rows, out / FIGURE_FILE, title)
    return {"table": out / TABLE_FILE, "summary": out / SUMMARY_FILE, "figure": figure}


__all__ = [
    "FIGURE_FILE",
    "SUMMARY_FILE",
    "TABLE_FILE",
    "markdown_table",
    "write_figure",
    "write_report",
]
