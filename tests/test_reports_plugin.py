"""The "Reviews pipeline" UI plugin against a small real lake (FastAPI TestClient).

The lake holds a run summary, real PNG/JSON/HTML artifacts drawn with matplotlib, a real local
registry (DuckDB) version and endpoint state with data-capture files.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[1]
PLUGIN_FILE = REPO / "plugins" / "reviews_reports.py"
BUCKET = "reviews-pipeline"
RUN_ID = "manual__2025-03-01T10:00:00+00:00"
OLDER_RUN_ID = "scheduled__2025-02-01T00:00:00+00:00"
ENDPOINT = "reviews-sentiment"
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


def _confusion_matrix_png() -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 3), dpi=80)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow([[50, 5, 2], [6, 40, 8], [1, 7, 60]], cmap="Blues")
    ax.set_title("Confusion matrix")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _register(lake: Path, run_uri: str) -> str:
    from include.pipeline.targets.local.sagemaker import registry

    group = "ReviewsSentiment"
    package = {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": "PendingManualApproval",
        "InferenceSpecification": {
            "Containers": [
                {"Image": "pytorch-inference:2", "ModelDataUrl": f"{run_uri}/model.tar.gz"}
            ],
            "SupportedContentTypes": ["application/jsonlines"],
            "SupportedResponseMIMETypes": ["application/jsonlines"],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"{run_uri}/evaluation.json",
                }
            }
        },
        "CustomerMetadataProperties": {"run_id": RUN_ID, "data_hash": "abc123<script>"},
    }
    return registry.register_model_version({"ModelPackageGroupName": group}, package, lake)


def build_lake(root: Path) -> Path:
    """A lake with one complete run, one run with only ingestion, registry and endpoint state."""
    lake = root / "lake"
    run_dir = lake / BUCKET / "runs" / RUN_ID
    run_uri = f"s3://{BUCKET}/runs/{RUN_ID}"
    _write(run_dir / "evaluation" / "confusion_matrix.png", _confusion_matrix_png())
    _write(
        run_dir / "evaluation" / "evaluation.json",
        json.dumps(
            {
                "accuracy": 0.8125,
                "macro_f1": 0.7931,
                "per_class": {
                    "-1": {"precision": 0.8, "recall": 0.7, "f1-score": 0.75, "support": 57},
                    "0": {"precision": 0.7, "recall": 0.75, "f1-score": 0.72, "support": 54},
                    "1": {"precision": 0.9, "recall": 0.88, "f1-score": 0.89, "support": 68},
                },
            }
        ),
    )
    _write(
        run_dir / "training" / "metrics.json",
        json.dumps(
            {
                "train_loss": [1.1, 0.9, 0.7, 0.55],
                "validation_loss": [1.0, 0.85, 0.72, 0.66],
                "validation_accuracy": [0.45, 0.6, 0.7, 0.78],
            }
        ),
    )
    analysis = {
        "version": "1.0",
        "pre_training_bias_metrics": {
            "label": "sentiment",
            "facets": {
                "product_category": [
                    {
                        "value_or_threshold": value,
                        "metrics": [
                            {"name": "CI", "description": "Class Imbalance (CI)", "value": ci},
                            {"name": "DPL", "description": "Difference in labels", "value": dpl},
                        ],
                    }
                    for value, ci, dpl in (("Dresses", 0.42, 0.05), ("Jackets", -0.3, -0.12))
                ]
            },
        },
    }
    _write(run_dir / "bias" / "analysis.json", json.dumps(analysis))
    _write(run_dir / "bias" / "report.html", "<html><body><h1>Bias report</h1></body></html>")
    arn = _register(lake, run_uri)
    summary = {
        "run_id": RUN_ID,
        "dag_id": "reviews_pipeline",
        "target": "local",
        "started_at": "2025-03-01T10:00:00+00:00",
        "finished_at": "2025-03-01T10:20:00+00:00",
        "state": "success",
        "ingestion": {
            "rows": 6004,
            "quarantined": 3,
            "by_sentiment": {"-1": 700, "0": 900, "1": 4404},
            "by_category": {"Dresses": 2000, "Tops": 2500, "Jackets": 1504},
            "raw_uri": f"s3://{BUCKET}/raw/abc/reviews.csv",
        },
        "bias": {
            "analysis_uri": f"{run_uri}/bias/analysis.json",
            "report_uri": f"{run_uri}/bias/report.html",
            "mode": "warn",
            "violations": [
                {
                    "facet": "product_category",
                    "value": "Dresses",
                    "metric": "CI",
                    "metric_value": 0.42,
                    "threshold": 0.3,
                }
            ],
        },
        "training": {
            "job_name": "reviews-train-1",
            "metrics": {"train_loss": 0.55, "validation_loss": 0.66, "validation_accuracy": 0.78},
            "rule_statuses": [
                {
                    "RuleConfigurationName": "LossNotDecreasing",
                    "RuleEvaluationStatus": "NoIssuesFound",
                }
            ],
            "model_uri": f"{run_uri}/model.tar.gz",
            "metrics_uri": f"{run_uri}/training/metrics.json",
        },
        "evaluation": {
            "accuracy": 0.8125,
            "macro_f1": 0.7931,
            "uri": f"{run_uri}/evaluation/evaluation.json",
            "confusion_matrix_uri": f"{run_uri}/evaluation/confusion_matrix.png",
        },
        "registration": {"model_package_arn": arn, "status": "PendingManualApproval"},
        "deployment": {
            "endpoint_name": ENDPOINT,
            "endpoint_url": "http://127.0.0.1:8765",
            "strategy": "canary",
            "variants": [{"VariantName": "AllTraffic", "CurrentWeight": 1.0}],
        },
    }
    _write(run_dir / "summary.json", json.dumps(summary))
    _write(
        lake / BUCKET / "runs" / OLDER_RUN_ID / "summary.json",
        json.dumps(
            {
                "run_id": OLDER_RUN_ID,
                "started_at": "2025-02-01T00:00:00+00:00",
                "state": "running",
                "ingestion": {"rows": 10},
            }
        ),
    )
    capture = f"s3://{BUCKET}/datacapture"
    _write(
        lake / "_sagemaker" / "endpoints" / f"{ENDPOINT}.json",
        json.dumps(
            {
                "EndpointName": ENDPOINT,
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


@pytest.fixture(scope="module")
def plugin():
    return load_plugin_module()


@pytest.fixture
def client(plugin, lake):
    return TestClient(plugin.app)


def test_index_lists_runs_newest_first_with_key_metrics(client):
    response = client.get("/")
    assert response.status_code == 200
    text = response.text
    assert f'/runs/{quote(RUN_ID, safe="")}"' in text
    assert text.index(RUN_ID) < text.index(OLDER_RUN_ID)
    assert "0.8125" in text and "0.7931" in text and "6004" in text


def test_api_runs_is_json(client):
    rows = client.get("/api/runs").json()
    assert [r["run_id"] for r in rows] == [RUN_ID, OLDER_RUN_ID]
    assert rows[0]["accuracy"] == 0.8125
    assert rows[0]["bias_violations"] == 1
    assert rows[0]["registration"] == "PendingManualApproval"
    assert rows[1]["accuracy"] is None


def test_run_page_shows_every_section(client):
    response = client.get(f"/runs/{quote(RUN_ID, safe='')}")
    assert response.status_code == 200
    text = response.text
    for expected in ("0.8125", "0.7931", "reviews-train-1", "LossNotDecreasing", "NoIssuesFound"):
        assert expected in text
    assert "Threshold violations" in text and "Dresses" in text
    assert "/charts/curves.png" in text and "/charts/bias.png" in text
    assert "/charts/sentiment.png" in text
    assert (
        "artifact?uri="
        + quote(f"s3://{BUCKET}/runs/{RUN_ID}/evaluation/confusion_matrix.png", safe="")
        in text
    )
    assert "Group ReviewsSentiment" in text and "PendingManualApproval" in text
    assert "abc123&lt;script&gt;" in text and "abc123<script>" not in text  # escaped lineage
    assert "blue" in text and "green" in text and "blue: 9" in text and "green: 2" in text
    assert "0.9000 → 0.9000" not in text and "0.1000 → 0.5000" in text
    assert "not yet" not in text.replace("training curves: not yet", "")


def test_charts_are_real_pngs(client):
    run = quote(RUN_ID, safe="")
    for name in ("curves", "sentiment", "category", "bias"):
        response = client.get(f"/runs/{run}/charts/{name}.png")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(PNG_MAGIC)
    assert client.get(f"/runs/{run}/charts/nope.png").status_code == 404


def test_artifact_route_serves_png_json_and_sandboxed_html(client, lake):
    png_uri = f"s3://{BUCKET}/runs/{RUN_ID}/evaluation/confusion_matrix.png"
    response = client.get("/artifact", params={"uri": png_uri})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert (
        response.content
        == (lake / BUCKET / "runs" / RUN_ID / "evaluation" / "confusion_matrix.png").read_bytes()
    )
    doc = client.get(
        "/artifact", params={"uri": f"s3://{BUCKET}/runs/{RUN_ID}/evaluation/evaluation.json"}
    )
    assert doc.json()["accuracy"] == 0.8125
    report = client.get(
        "/artifact", params={"uri": f"s3://{BUCKET}/runs/{RUN_ID}/bias/report.html"}
    )
    assert report.status_code == 200 and "Bias report" in report.text
    assert report.headers["content-security-policy"] == "sandbox"


@pytest.mark.parametrize(
    "uri",
    [
        f"s3://{BUCKET}/runs/../../etc/passwd.json",
        f"s3://{BUCKET}/runs/%2e%2e/x.png",
        f"s3://{BUCKET}/runs/a\\..\\b.png",
        f"s3://other-bucket/runs/{RUN_ID}/evaluation/confusion_matrix.png",
        f"s3://{BUCKET}/_sagemaker/endpoints/{ENDPOINT}.json",
        f"s3://{BUCKET}/runs/{RUN_ID}/model.tar.gz",
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
    response = client.get("/artifact", params={"uri": f"s3://{BUCKET}/runs/{RUN_ID}/none.png"})
    assert response.status_code == 404
    assert "does not exist" in response.text


def test_missing_pieces_render_not_yet_never_500(client, lake):
    older = client.get(f"/runs/{quote(OLDER_RUN_ID, safe='')}")
    assert older.status_code == 200
    assert older.text.count("not yet") >= 4  # bias, training, evaluation, registry
    assert client.get(f"/runs/{quote(OLDER_RUN_ID, safe='')}/charts/curves.png").status_code == 404
    # Artifacts a summary points at vanish; registry and endpoint state go missing.
    run_dir = lake / BUCKET / "runs" / RUN_ID
    (run_dir / "training" / "metrics.json").unlink()
    (run_dir / "bias" / "analysis.json").write_text("{not json")
    (lake / "_sagemaker" / "registry.duckdb").unlink()
    (lake / "_sagemaker" / "endpoints" / f"{ENDPOINT}.json").write_text("[")
    page = client.get(f"/runs/{quote(RUN_ID, safe='')}")
    assert page.status_code == 200
    assert "training curves: not yet" in page.text
    assert "registry versions: not yet" in page.text
    assert "/charts/curves.png" not in page.text and "/charts/bias.png" not in page.text
    assert "0.8125" in page.text


def test_broken_summary_and_unknown_run(client, lake):
    _write(lake / BUCKET / "runs" / "broken" / "summary.json", '{"state": ')
    assert client.get("/").status_code == 200
    assert [r["run_id"] for r in client.get("/api/runs").json()] == [RUN_ID, OLDER_RUN_ID]
    assert client.get("/runs/nope").status_code == 404
    assert client.get("/runs/broken").status_code == 404
    assert client.get("/runs/%2E%2E").status_code == 404


def test_empty_lake_index(plugin, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_LAKE", str(tmp_path / "empty"))
    monkeypatch.setenv("PIPELINE_TARGET", "local")
    response = TestClient(plugin.app).get("/")
    assert response.status_code == 200 and "no runs yet" in response.text
    assert TestClient(plugin.app).get("/api/runs").json() == []


def test_values_are_escaped(client, lake):
    summary_path = lake / BUCKET / "runs" / RUN_ID / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["state"] = "<img src=x onerror=alert(1)>"
    summary["training"]["job_name"] = '"><script>alert(1)</script>'
    summary_path.write_text(json.dumps(summary))
    for text in (client.get("/").text, client.get(f"/runs/{quote(RUN_ID, safe='')}").text):
        assert "<img src=x" not in text and "<script>alert" not in text
        assert "&lt;img src=x" in text or "&lt;script&gt;" in text


def test_plugin_registers_with_airflow_and_mounts_under_reviews(tmp_path):
    """Airflow's own plugin manager loads plugins/ and its API-server hook mounts the app."""
    lake = build_lake(tmp_path)
    script = """
import json
from fastapi import FastAPI
from fastapi.testclient import TestClient
from airflow import plugins_manager
from airflow.api_fastapi.app import init_plugins
from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

plugins, errors = plugins_manager._get_plugins()
info = [p for p in plugins_manager.get_plugin_info() if p["name"] == "reviews_reports"]
views = [ExternalViewResponse(**v).model_dump() for v in info[0]["external_views"]] if info else []
app = FastAPI()
init_plugins(app)
client = TestClient(app)
runs = client.get("/reviews/api/runs").json()
page = client.get("/reviews/")
print(json.dumps({"errors": errors, "info": info, "views": views, "runs": runs,
                  "page": page.text, "status": page.status_code}, default=str))
"""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
        "PIPELINE_LAKE": str(lake),
        "PIPELINE_TARGET": "local",
        "PYTHONPATH": "",
    }
    env.pop("PIPELINE_BUCKET", None)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
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
    assert [r["run_id"] for r in result["runs"]] == [RUN_ID, OLDER_RUN_ID]
    # Links inside the mounted app carry the mount prefix.
    assert result["status"] == 200
    assert f'href="/reviews/runs/{quote(RUN_ID, safe="")}"' in result["page"]
