"""The "Reviews pipeline" UI plugin against a small real lake (FastAPI TestClient).

The lake holds a run summary, real PNG/JSON/HTML artifacts drawn with matplotlib, a real local
registry (DuckDB) version and endpoint state with data-capture files.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.airflow_auth import COOKIE, reader_token
from tests.conftest import run_captured
from tests.recorded_run import (
    ENDPOINT,
    OLDER_RUN_ID,
    RUN_ID,
    RUN_KEY,
    copy_recorded_run,
    summary_path,
)

REPO = Path(__file__).resolve().parents[1]
PLUGIN_FILE = REPO / "plugins" / "reviews_reports.py"
BUCKET = "reviews-pipeline"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_plugin_module():
    """The plugin file as Airflow loads it: by path, not as a package member."""
    spec = importlib.util.spec_from_file_location("reviews_reports_under_test", PLUGIN_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def build_lake(root: Path) -> Path:
    """A lake with the recorded runs (real documents and summaries, see tests/recorded_run.py:
    a full one and an older one with only ingestion), a registry version and endpoint state
    with data-capture files."""
    lake = root / "lake"
    copy_recorded_run(lake)
    capture = f"s3://{BUCKET}/datacapture"
    _write(
        lake / "_sagemaker" / "endpoints" / f"{ENDPOINT}.json",
        json.dumps(
            {
                "EndpointName": ENDPOINT,
                "EndpointArn": f"arn:aws:sagemaker:us-east-1:000000000000:endpoint/{ENDPOINT}",
                "EndpointStatus": "InService",
                "EndpointConfigName": f"{ENDPOINT}-config-2",
                "ProductionVariants": [
                    {"VariantName": "blue", "CurrentWeight": 0.9, "DesiredWeight": 0.9},
                    {"VariantName": "green", "CurrentWeight": 0.1, "DesiredWeight": 0.5},
                ],
                "DataCaptureConfig": {"EnableCapture": True, "DestinationS3Uri": capture},
            }
        ),
    )
    for variant, n in (("blue", 9), ("green", 2)):
        lines = "".join(json.dumps({"captureData": {"i": i}}) + "\n" for i in range(n))
        _write(lake / BUCKET / "datacapture" / ENDPOINT / variant / "2025/03/01/10/a.jsonl", lines)
    return lake


@pytest.fixture
def lake(tmp_path, monkeypatch):
    root = build_lake(tmp_path)
    monkeypatch.setenv("PIPELINE_LAKE", str(root))
    monkeypatch.setenv("PIPELINE_TARGET", "local")
    monkeypatch.delenv("PIPELINE_BUCKET", raising=False)
    return root


def recorded_summary(lake: Path) -> dict:
    return json.loads(summary_path(lake).read_text())


def f4(value: float) -> str:
    """A number as the page shows it."""
    return f"{value:.4f}"


@pytest.fixture(scope="module")
def plugin():
    return load_plugin_module()


@pytest.fixture
def client(plugin, lake, airflow_db):
    # Logged in as the API server's auth manager would have it (see tests/airflow_auth.py).
    return TestClient(plugin.app, cookies={COOKIE: reader_token()})


def test_index_lists_runs_newest_first_with_key_metrics(client, lake):
    summary = recorded_summary(lake)
    response = client.get("/")
    assert response.status_code == 200
    text = response.text
    assert f'/runs/{quote(RUN_ID, safe="")}"' in text
    assert text.index(RUN_ID) < text.index(OLDER_RUN_ID)
    evaluation = summary["evaluation"]
    assert f4(evaluation["accuracy"]) in text and f4(evaluation["macro_f1"]) in text
    assert str(summary["ingestion"]["rows"]) in text
    assert f4(summary["training"]["metrics"]["validation:accuracy"]) in text


def test_api_runs_is_json(client, lake):
    summary = recorded_summary(lake)
    rows = client.get("/api/runs").json()
    assert [r["run_id"] for r in rows] == [RUN_ID, OLDER_RUN_ID]
    assert rows[0]["accuracy"] == summary["evaluation"]["accuracy"]
    assert rows[0]["validation_accuracy"] == summary["training"]["metrics"]["validation:accuracy"]
    assert rows[0]["bias_violations"] == 1  # Jackets' DPL -0.32 over the default 0.2
    assert rows[0]["registration"] == "PendingManualApproval"
    assert rows[1]["accuracy"] is None and rows[1]["validation_accuracy"] is None


def test_run_page_shows_every_section(client, lake):
    from include.pipeline.documents import evaluation as evaluation_doc

    summary = recorded_summary(lake)
    response = client.get(f"/runs/{quote(RUN_ID, safe='')}")
    assert response.status_code == 200
    text = response.text
    evaluation = summary["evaluation"]
    for expected in (
        f4(evaluation["accuracy"]),
        f4(evaluation["macro_f1"]),
        "reviews-train-1",
        "LossNotDecreasing",
        "NoIssuesFound",
        "What it saw",
        "StepOutlier NoIssuesFound",
        "ProfilerReport",
    ):
        assert expected in text
    assert "Threshold violations" in text and "Jackets" in text
    # the comparison with the serving model: none served before this recorded run
    champion = text[text.index('id="champion"') :]
    assert "Challenger: finetune" in champion and "no model served" in champion
    assert "Decision: <b>registered</b>" in champion
    assert "CDDL is reported, not gated" in text  # the gate says what it leaves out
    # The recipe and the best trial side by side; the tuned set scored lower, the recipe stays.
    assert "Hyperparameters: recipe or tuned" in text
    assert "recipe <b>(taken)</b>" in text and "tune-abc-001" in text and "recipe-abc" in text
    # The profiler report beside the training job, linked from the training section.
    report_uri = summary["training"]["profiler_report_uri"]
    assert report_uri.endswith("/rule-output/ProfilerReport/profiler-output/profiler-report.html")
    assert quote(report_uri, safe="") in text
    page = client.get("/artifact", params={"uri": report_uri})
    assert page.status_code == 200 and "Profiler report: reviews-train-1" in page.text
    # The per-class table and the confusion matrix come from the job's evaluation.json.
    report = evaluation_doc.parse(
        (lake / BUCKET / "runs" / RUN_KEY / "evaluation" / "evaluation.json").read_bytes()
    )
    assert report.training_history is not None and report.training_history.val_acc
    section = text[text.index('id="evaluation"') :]
    assert "Per class" in section and "Confusion matrix" in section
    # Each accuracy comes with its 95% Wilson interval, the served model's also per category
    # with the category's row count.
    low, high = report.accuracy_interval
    assert f'{f4(report.accuracy)} <span class="muted">[{f4(low)}, {f4(high)}]</span>' in section
    assert report.per_category and "Accuracy per product category" in section
    for category, scores in report.per_category.items():
        c_low, c_high = evaluation_doc.wilson_interval(scores.correct, scores.n)
        row = f'<td>{category}</td><td class="num">{scores.n}</td>'
        assert row in section and f"[{f4(c_low)}, {f4(c_high)}]" in section
    board = text[text.index('id="leaderboard"') :]
    entry = summary["leaderboard"]["entries"][0]
    assert f"[{f4(entry['accuracy_interval'][0])}, {f4(entry['accuracy_interval'][1])}]" in board
    for label, scores in report.per_class.items():
        row = f"<td>{label}</td>" + "".join(
            f'<td class="num">{v}</td>'
            for v in (f4(scores.precision), f4(scores.recall), f4(scores.f1), scores.support)
        )
        assert row in section, row
    for label, counts in zip(
        report.confusion_matrix.labels, report.confusion_matrix.matrix, strict=True
    ):
        assert f"<td>{label}</td>" + "".join(f'<td class="num">{c}</td>' for c in counts) in section
    assert "/charts/curves.png" in text and "/charts/bias.png" in text
    assert "/charts/sentiment.png" in text
    assert (
        "artifact?uri="
        + quote(f"s3://{BUCKET}/runs/{RUN_KEY}/evaluation/confusion_matrix.png", safe="")
        in text
    )
    assert "Group ReviewsSentiment" in text and "PendingManualApproval" in text
    assert "abc123&lt;script&gt;" in text and "abc123<script>" not in text  # escaped lineage
    assert "blue" in text and "green" in text and "blue: 9" in text and "green: 2" in text
    assert "0.9000 → 0.9000" not in text and "0.1000 → 0.5000" in text
    assert "not yet" not in text


def test_charts_are_real_pngs(client):
    run = quote(RUN_ID, safe="")
    for name in ("curves", "sentiment", "category", "bias"):
        response = client.get(f"/runs/{run}/charts/{name}.png")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(PNG_MAGIC)
    assert client.get(f"/runs/{run}/charts/nope.png").status_code == 404


def test_artifact_route_serves_png_json_and_sandboxed_html(client, lake):
    summary = recorded_summary(lake)
    png_uri = f"s3://{BUCKET}/runs/{RUN_KEY}/evaluation/confusion_matrix.png"
    response = client.get("/artifact", params={"uri": png_uri})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert (
        response.content
        == (lake / BUCKET / "runs" / RUN_KEY / "evaluation" / "confusion_matrix.png").read_bytes()
    )
    doc = client.get(
        "/artifact", params={"uri": f"s3://{BUCKET}/runs/{RUN_KEY}/evaluation/evaluation.json"}
    )
    assert doc.json()["metrics"]["accuracy"]["value"] == summary["evaluation"]["accuracy"]
    report = client.get("/artifact", params={"uri": summary["bias"]["report_uri"]})
    assert report.status_code == 200 and "Bias report" in report.text
    assert report.headers["content-security-policy"] == "sandbox"


@pytest.mark.parametrize(
    "uri",
    [
        f"s3://{BUCKET}/runs/../../etc/passwd.json",
        f"s3://{BUCKET}/runs/%2e%2e/x.png",
        f"s3://{BUCKET}/runs/a\\..\\b.png",
        f"s3://other-bucket/runs/{RUN_KEY}/evaluation/confusion_matrix.png",
        f"s3://{BUCKET}/_sagemaker/endpoints/{ENDPOINT}.json",
        f"s3://{BUCKET}/runs/{RUN_KEY}/model.tar.gz",
        "file:///etc/passwd",
        "/etc/passwd",
        f"s3://{BUCKET}//etc/passwd.json",
    ],
)
def test_artifact_route_rejects_traversal_and_foreign_uris(client, uri):
    response = client.get("/artifact", params={"uri": uri})
    assert response.status_code == 400, response.text
    assert "passwd" not in response.text or "root:" not in response.text


def test_artifact_route_missing_file_is_404(client):
    response = client.get("/artifact", params={"uri": f"s3://{BUCKET}/runs/{RUN_KEY}/none.png"})
    assert response.status_code == 404
    assert "does not exist" in response.text


def test_missing_pieces_render_not_yet_never_500(client, lake):
    older = client.get(f"/runs/{quote(OLDER_RUN_ID, safe='')}")
    assert older.status_code == 200
    assert older.text.count("not yet") >= 4  # bias, training, evaluation, registry
    assert client.get(f"/runs/{quote(OLDER_RUN_ID, safe='')}/charts/curves.png").status_code == 404
    # Artifacts a summary points at vanish; registry and endpoint state go missing.
    accuracy = f4(recorded_summary(lake)["evaluation"]["accuracy"])
    run_dir = lake / BUCKET / "runs" / RUN_KEY
    (run_dir / "evaluation" / "evaluation.json").unlink()
    (run_dir / "bias" / "raw" / "report" / "analysis.json").write_text("{not json")
    (lake / "_sagemaker" / "registry.duckdb").unlink()
    (lake / "_sagemaker" / "endpoints" / f"{ENDPOINT}.json").write_text("[")
    page = client.get(f"/runs/{quote(RUN_ID, safe='')}")
    assert page.status_code == 200
    assert "training curves: not yet" in page.text
    assert "registry versions: not yet" in page.text
    assert "evaluation.json: not yet" in page.text
    assert "/charts/curves.png" not in page.text and "/charts/bias.png" not in page.text
    assert accuracy in page.text


def test_broken_summary_and_unknown_run(client, lake):
    _write(lake / BUCKET / "runs" / "broken" / "summary.json", '{"state": ')
    assert client.get("/").status_code == 200
    assert [r["run_id"] for r in client.get("/api/runs").json()] == [RUN_ID, OLDER_RUN_ID]
    assert client.get("/runs/nope").status_code == 404
    assert client.get("/runs/broken").status_code == 404
    assert client.get("/runs/%2E%2E").status_code == 404


def test_empty_lake_index(plugin, tmp_path, monkeypatch, airflow_db):
    monkeypatch.setenv("PIPELINE_LAKE", str(tmp_path / "empty"))
    monkeypatch.setenv("PIPELINE_TARGET", "local")
    response = TestClient(plugin.app, cookies={COOKIE: reader_token()}).get("/")
    assert response.status_code == 200 and "no runs yet" in response.text
    assert TestClient(plugin.app, cookies={COOKIE: reader_token()}).get("/api/runs").json() == []


def test_values_are_escaped(client, lake):
    path = summary_path(lake)
    summary = json.loads(path.read_text())
    summary["state"] = "<img src=x onerror=alert(1)>"
    summary["training"]["job_name"] = '"><script>alert(1)</script>'
    path.write_text(json.dumps(summary))
    for text in (client.get("/").text, client.get(f"/runs/{quote(RUN_ID, safe='')}").text):
        assert "<img src=x" not in text and "<script>alert" not in text
        assert "&lt;img src=x" in text or "&lt;script&gt;" in text


def test_plugin_registers_with_airflow_and_mounts_under_reviews(tmp_path, airflow_db):
    """Airflow's own plugin manager loads plugins/ and its API-server hook mounts the app."""
    lake = build_lake(tmp_path)
    script = """
import json
from fastapi import FastAPI
from fastapi.testclient import TestClient
from airflow import plugins_manager
from airflow.api_fastapi.app import init_auth_manager, init_plugins
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

plugins, errors = plugins_manager._get_plugins()
info = [p for p in plugins_manager.get_plugin_info() if p["name"] == "reviews_reports"]
views = [ExternalViewResponse(**v).model_dump() for v in info[0]["external_views"]] if info else []
app = FastAPI()
auth = init_auth_manager(app)
init_plugins(app)
anonymous = TestClient(app).get("/reviews/api/runs").status_code
token = auth.generate_jwt(SimpleAuthManagerUser(username="reviewer", role="viewer"))
client = TestClient(app, cookies={"_token": token})
runs = client.get("/reviews/api/runs").json()
page = client.get("/reviews/")
print(json.dumps({"errors": errors, "info": info, "views": views, "runs": runs,
                  "page": page.text, "status": page.status_code, "anonymous": anonymous},
                 default=str))
"""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_db / 'airflow.db'}",
        "PIPELINE_LAKE": str(lake),
        "PIPELINE_TARGET": "local",
        "PYTHONPATH": "",
    }
    env.pop("PIPELINE_BUCKET", None)
    done = run_captured(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert len(result["info"]) == 1, result["info"]
    apps = result["info"][0]["fastapi_apps"]
    assert apps == [
        {
            "app": "fastapi.applications.FastAPI",
            "url_prefix": "/reviews",
            "name": "Reviews pipeline",
        }
    ]
    assert result["views"][0]["name"] == "Reviews pipeline"
    assert result["views"][0]["href"] == "/reviews/"
    assert result["views"][0]["destination"] == "nav"
    run_view = result["views"][1]  # the "Reports" tab on each DAG run; the UI fills {RUN_ID}
    assert (run_view["name"], run_view["destination"]) == ("Reports", "dag_run")
    assert run_view["href"].replace("{RUN_ID}", quote(RUN_ID, safe="")) == (
        f"/reviews/runs/{quote(RUN_ID, safe='')}"
    )
    assert [r["run_id"] for r in result["runs"]] == [RUN_ID, OLDER_RUN_ID]
    # Links inside the mounted app carry the mount prefix.
    assert result["status"] == 200
    assert result["anonymous"] == 401  # the reports need the API server's login
    assert f'href="/reviews/runs/{quote(RUN_ID, safe="")}"' in result["page"]
