"""Model Monitor's documents as the pipeline writes them (``include/jobs/monitor.py`` owns the
shapes, inside its container; this is the Airflow side's reader), per endpoint:

- ``monitoring/<endpoint>/baselines/<model>/``: ``statistics.json``, ``constraints.json``,
  ``vocabulary.json`` (the baseline job model_monitor runs on the deployment event),
- ``monitoring/<endpoint>/reports/<yyyy-mm-ddThh>/``: ``statistics.json``,
  ``constraint_violations.json`` (one monitoring window), and ``window.json`` (the pipeline's
  own: which served model and baseline the window was judged against, :func:`window_doc`).

:func:`overview` is what the reports page shows: the latest windows with their violations and
each numerical feature's mean per window (the drift chart's series), and the human-measured
quality of the served models (:func:`include.pipeline.documents.labels.quality`);
:func:`drift` is a drift chart's data: one feature's baseline statistics and its statistics in
the latest windows.
"""

from __future__ import annotations

from include.jobs.monitor import (
    CHECK_TYPES,
    CONSTRAINTS_FILE,
    STATISTICS_FILE,
    VIOLATIONS_FILE,
    VOCABULARY_FILE,
)
from include.pipeline.documents import labels as label_docs

WINDOW_FILE = "window.json"

__all__ = [
    "CHECK_TYPES",
    "CONSTRAINTS_FILE",
    "STATISTICS_FILE",
    "VIOLATIONS_FILE",
    "VOCABULARY_FILE",
    "WINDOW_FILE",
    "drift",
    "monitored_endpoints",
    "overview",
    "window_doc",
    "window_summary",
]


def _means(stats: dict) -> dict[str, float]:
    return {
        f["name"]: f["numerical_statistics"]["mean"]
        for f in stats.get("features", [])
        if "numerical_statistics" in f
    }


def window_summary(window: str, stats: dict, violations: dict) -> dict:
    found = violations.get("violations", [])
    return {
        "window": window,
        "item_count": stats.get("dataset", {}).get("item_count", 0),
        "violations": found,
        "drifted": sorted({v["feature_name"] for v in found}),
        "means": _means(stats),
    }


def overview(storage, settings, endpoint_name: str, limit: int = 24) -> dict:
    """The latest ``limit`` windows of ``endpoint_name`` (newest first) and label quality."""
    from include.pipeline.layout import Layout

    prefix = Layout(settings).monitoring_reports(endpoint_name)
    windows = []
    for name in sorted(storage.folders(prefix), reverse=True)[:limit]:
        base = f"{prefix}{name.strip('/').rsplit('/', 1)[-1]}/"
        try:
            stats = storage.read_json(base + STATISTICS_FILE)
            violations = storage.read_json(base + VIOLATIONS_FILE)
        except FileNotFoundError:
            continue
        windows.append(window_summary(base.rstrip("/").rsplit("/", 1)[-1], stats, violations))
    labels = label_docs.read_all(storage, settings, endpoint_name)
    return {
        "endpoint_name": endpoint_name,
        "windows": windows,
        "quality": label_docs.quality(labels),
    }


def window_doc(found: dict) -> dict:
    """``window.json``: what a window was judged against (the model_monitor DAG's window)."""
    keys = ("endpoint_name", "model_name", "baseline_uri", "window_start", "window_end", "records")
    return {k: found[k] for k in keys}


def monitored_endpoints(storage, settings) -> list[str]:
    """Every endpoint with monitoring documents (baselines or reports)."""
    from include.pipeline.layout import Layout

    return storage.folders(Layout(settings).monitoring())


def _feature(stats: dict, name: str) -> dict | None:
    return next((f for f in stats.get("features", []) if f.get("name") == name), None)


def drift(storage, settings, endpoint_name: str, feature: str, limit: int = 12) -> dict | None:
    """One feature of ``endpoint_name``: ``{"feature", "baseline", "windows": [{"window",
    "statistics", "drifted"}]}`` over the latest ``limit`` windows (oldest first), against the
    baseline the newest of them was judged with (its ``window.json``); None when no window or
    baseline has the feature."""
    from include.pipeline.layout import Layout

    layout = Layout(settings)
    windows, baseline_uri = [], None
    for name in sorted(storage.folders(layout.monitoring_reports(endpoint_name)))[-limit:]:
        base = layout.monitoring_report(endpoint_name, name)
        try:
            stats = storage.read_json(base + STATISTICS_FILE)
            found = storage.read_json(base + VIOLATIONS_FILE).get("violations", [])
        except FileNotFoundError:
            continue
        if storage.exists(base + WINDOW_FILE):
            baseline_uri = storage.read_json(base + WINDOW_FILE)["baseline_uri"]
        windows.append(
            {
                "window": name,
                "statistics": _feature(stats, feature),
                "drifted": any(v.get("feature_name") == feature for v in found),
            }
        )
    baseline = None
    if baseline_uri and storage.exists(baseline_uri + STATISTICS_FILE):
        baseline = _feature(storage.read_json(baseline_uri + STATISTICS_FILE), feature)
    if not any(w["statistics"] for w in windows) and baseline is None:
        return None  # no window judged yet, or a feature the monitor does not know
    return {"feature": feature, "baseline": baseline, "windows": windows}
