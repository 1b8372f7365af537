"""Drift charts on the reports page, drawn from a real monitoring run's documents.

The baseline and two windows (one drawn like the baseline, one drifted) are written by the
monitoring job's own code (``include/jobs/monitor.py``) into the lake at the run layout's places,
and each window's ``window.json`` by the model_monitor DAG's ``read_report``; the page links one
chart per feature and the plugin draws it (FastAPI TestClient, logged in as a reader).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from include.jobs import monitor
from include.pipeline import reports
from include.pipeline import settings as pipeline_settings
from include.pipeline.layout import Layout
from include.pipeline.tasks import monitoring
from tests.airflow_auth import COOKIE, reader_token
from tests.test_monitor_job import _capture, _drifted, _like_training
from tests.test_reports_plugin import load_plugin_module

ENDPOINT, MODEL = "reviews-ep", "model-1"
WINDOWS = {"2026-01-01T05": _like_training(60, seed=7), "2026-01-01T06": _drifted(60, seed=3)}


def _path(settings, uri: str):
    return settings.lake / uri.removeprefix("s3://")


@pytest.fixture
def monitored(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("PIPELINE_TARGET", "local")
    monkeypatch.delenv("PIPELINE_BUCKET", raising=False)
    settings = pipeline_settings.load()
    layout = Layout(settings)
    baseline = layout.monitoring_baseline(ENDPOINT, MODEL)
    base_capture = _capture(tmp_path / "base", _like_training(400, seed=1), per_request=3)
    monitor.run_baseline(
        monitor.parse_args(
            ["--mode", "baseline", "--dataset", str(base_capture)]
            + ["--output", str(_path(settings, baseline))]
        )
    )
    for window, reviews in WINDOWS.items():
        report = layout.monitoring_report(ENDPOINT, window)
        capture = _capture(tmp_path / window, reviews, endpoint=ENDPOINT)
        monitor.main(
            ["--mode", "monitor", "--dataset", str(capture)]
            + ["--baseline", str(_path(settings, baseline))]
            + ["--output", str(_path(settings, report)), "--min-records", "20"]
        )
        found = {
            "endpoint_name": ENDPOINT,
            "model_name": MODEL,
            "baseline_uri": baseline,
            "window_start": f"{window}:00:00+00:00",
            "window_end": f"{window}:59:59+00:00",
            "records": len(reviews),
            "report_uri": report,
        }
        monitoring.read_report(settings, found)  # writes window.json, as check_violations does
    return settings


def test_drift_series_compares_the_windows_with_the_baseline(monitored):
    oov = reports.drift_series(ENDPOINT, "oov_rate", monitored)
    assert [w["window"] for w in oov["windows"]] == list(WINDOWS)
    like, drifted = (w["statistics"]["numerical_statistics"]["mean"] for w in oov["windows"])
    base = oov["baseline"]["numerical_statistics"]["mean"]
    assert abs(like - base) < 0.1 < drifted - base  # gibberish is out of the vocabulary
    assert [w["drifted"] for w in oov["windows"]] == [False, True]
    label = reports.drift_series(ENDPOINT, "predicted_label", monitored)
    assert label["baseline"]["inferred_type"] == "String"
    assert reports.drift_series(ENDPOINT, "no_such_feature", monitored) is None
    assert reports.drift_series("bad_name!", "oov_rate", monitored) is None


def test_the_page_links_a_drift_chart_per_feature_and_the_plugin_draws_them(monitored, airflow_db):
    plugin = load_plugin_module()
    html = plugin.monitoring_section({"deployment": {"endpoint_name": ENDPOINT}}, "/reviews")
    features = reports.drift_features(ENDPOINT, monitored)
    assert {"review_length", "oov_rate", "probability", "predicted_label"} <= set(features)
    for feature in features:
        assert f'src="/reviews/endpoints/{ENDPOINT}/drift/{feature}.png"' in html
    client = TestClient(plugin.app, cookies={COOKIE: reader_token()})
    pngs = {}
    for feature in ("oov_rate", "predicted_label"):
        response = client.get(f"/endpoints/{ENDPOINT}/drift/{feature}.png")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
        pngs[feature] = response.content
    assert pngs["oov_rate"] != pngs["predicted_label"]
    assert client.get(f"/endpoints/{ENDPOINT}/drift/no_such_feature.png").status_code == 404
    assert client.get("/endpoints/other-ep/drift/oov_rate.png").status_code == 404
