"""The human-readable bias report: one HTML page plus a PNG chart per facet.

Readable at a glance: per facet value its share of the rows and of positive labels, and every
metric with its value coloured against the gate threshold (green within, amber close, red over).
Files are written next to ``analysis.json`` and reference each other by relative name.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from include.pipeline.documents.bias import DEFAULT_THRESHOLDS, metric_status

_COLOURS = {"ok": "#d4edda", "near": "#fff3cd", "violation": "#f8d7da", "none": "#eeeeee"}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "facet"


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{value:.4f}"


def _chart(facet: str, rows: list[dict], overall_positive: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["value_or_threshold"] for r in rows]
    height = max(2.5, 0.35 * len(labels) + 1.2)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, height), sharey=True)
    y = range(len(labels))
    left.barh(y, [r["count_share"] for r in rows], color="#4c72b0")
    left.set_yticks(list(y), labels)
    left.set_xlabel("share of rows")
    left.set_title(f"{facet}: rows per value")
    right.barh(y, [r["positive_share"] for r in rows], color="#55a868")
    right.axvline(overall_positive, color="black", linestyle="--", linewidth=1, label="all rows")
    right.set_xlim(0, 1)
    right.set_xlabel("share of positive labels")
    right.set_title("positive-label share")
    right.legend(loc="lower right", fontsize="small")
    left.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(
    analysis: dict,
    summary: dict,
    out_dir: Path,
    *,
    name: str = "report",
    title: str = "Bias report",
    thresholds: dict | None = None,
) -> list[Path]:
    """Write ``<name>.html`` and ``<name>_<facet>.png`` into ``out_dir``; the paths written.

    ``analysis`` is Clarify's analysis.json content, ``summary`` the processor's counts
    (``rows``, ``positive_share``, ``facets`` -> rows of value/count/count_share/positive_share).
    """
    thresholds = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    out_dir = Path(out_dir)
    pre = analysis["pre_training_bias_metrics"]
    written: list[Path] = []
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin-bottom:1em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th:first-child,td:first-child{text-align:left}.legend span{padding:2px 8px;"
        "margin-right:6px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Label <b>{html.escape(str(pre['label']))}</b>, favourable value(s) "
        f"<b>{html.escape(str(pre['label_value_or_threshold']))}</b>; "
        f"{summary['rows']} rows, {summary['positive_share']:.1%} positive. "
        "Facet <i>d</i> is the value in the row, facet <i>a</i> all other rows.</p>",
        "<p class='legend'>"
        + "".join(
            f"<span style='background:{_COLOURS[k]}'>{label}</span>"
            for k, label in (
                ("ok", "within threshold"),
                ("near", "within 20% of threshold"),
                ("violation", "over threshold"),
                ("none", "no threshold / not computed"),
            )
        )
        + "</p>",
    ]
    for facet, entries in pre["facets"].items():
        rows = {r["value_or_threshold"]: r for r in summary["facets"].get(facet, [])}
        metric_names = [m["name"] for m in entries[0]["metrics"]] if entries else []
        png = f"{name}_{_slug(facet)}.png"
        _chart(facet, list(rows.values()), summary["positive_share"], out_dir / png)
        written.append(out_dir / png)
        head = "".join(
            f"<th title='{html.escape(_threshold_text(m, thresholds))}'>{m}</th>"
            for m in metric_names
        )
        parts += [
            f"<h2>Facet {html.escape(facet)}</h2>",
            "<table><tr><th>value</th><th>rows</th><th>row share</th><th>positive share</th>"
            f"{head}</tr>",
        ]
        for entry in entries:
            value = entry["value_or_threshold"]
            stats = rows.get(value, {})
            cells = []
            for metric in entry["metrics"]:
                status = metric_status(metric["name"], metric.get("value"), thresholds)
                tip = metric.get("error") or _threshold_text(metric["name"], thresholds)
                cells.append(
                    f"<td style='background:{_COLOURS[status]}' title='{html.escape(tip)}'>"
                    f"{_fmt(metric.get('value'))}</td>"
                )
            parts.append(
                f"<tr><td>{html.escape(value)}</td><td>{stats.get('count', '')}</td>"
                f"<td>{stats.get('count_share', 0):.1%}</td>"
                f"<td>{stats.get('positive_share', 0):.1%}</td>{''.join(cells)}</tr>"
            )
        parts += ["</table>", f"<img src='{html.escape(png)}' alt='{html.escape(facet)} chart'>"]
    descriptions = {}
    for entries in pre["facets"].values():
        for entry in entries:
            for metric in entry["metrics"]:
                descriptions[metric["name"]] = metric["description"]
    parts.append("<h2>Metrics</h2><table><tr><th>metric</th><th>threshold</th></tr>")
    for metric, description in descriptions.items():
        parts.append(
            f"<tr><td>{html.escape(description)}</td>"
            f"<td>{html.escape(_threshold_text(metric, thresholds))}</td></tr>"
        )
    parts.append("</table></body></html>")
    page = out_dir / f"{name}.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    written.append(page)
    return written


def _threshold_text(metric: str, thresholds: dict) -> str:
    limit = thresholds.get(metric)
    return f"|{metric}| <= {limit}" if limit is not None else "no threshold"
