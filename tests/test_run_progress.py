"""What a user sees of a run: task durations in the summary, the demo's digest lines, the
training ETA, the preflight that refuses a conflicting endpoint server before any work."""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from include.pipeline import settings as pipeline_settings
from include.pipeline.documents import summary as summary_doc
from include.pipeline.run_progress import TrainingProgress, duration, task_line


def test_task_seconds_add_mapped_instances_and_sort_slowest_first():
    crumbs = [
        {"task_id": "ingest", "map_index": -1, "state": "success", "duration": 2.04},
        {"task_id": "train_model", "map_index": -1, "state": "success", "duration": 301.26},
        {"task_id": "query", "map_index": 0, "state": "success", "duration": 1.5},
        {"task_id": "query", "map_index": 1, "state": "success", "duration": 1.5},
        {"task_id": "skipped_one", "map_index": -1, "state": "skipped", "duration": None},
    ]
    assert summary_doc.task_seconds(crumbs) == {"train_model": 301.3, "query": 3.0, "ingest": 2.0}
    assert summary_doc.task_seconds(None) == {}


def test_summary_records_and_shows_task_seconds():
    document = summary_doc.document(
        run_id="r1",
        dag_id="reviews_pipeline",
        target="local",
        steps={"training": {"job_name": "train-r1", "metrics": {}, "training_seconds": 290}},
        states={"train_model": "success", "ingest": "success"},
        durations={"train_model": 301.3, "ingest": 2.0},
    )
    assert document["task_seconds"] == {"train_model": 301.3, "ingest": 2.0}
    text = summary_doc.render_text(document)
    assert "task time: 303 s in 2 tasks; slowest: train_model 301 s, ingest 2 s" in text
    assert "training_seconds: 290" in text


def test_task_line_and_duration_formats():
    assert task_line("train_model", "success", 312.44).split() == [
        "success",
        "train_model",
        "312.4",
        "s",
    ]
    assert task_line("deploy", "skipped", None).split() == ["skipped", "deploy", "-", "s"]
    assert duration(59.6) == "1m00s" and duration(7) == "7s" and duration(3725) == "62m05s"


def test_training_progress_reports_the_eta_from_the_steps_seen():
    now = [100.0]
    progress = TrainingProgress(clock=lambda: now[0])
    assert progress.feed("training on cpu: 5400 rows, 2 epoch(s) x 100 steps of 32, ...") is None
    assert progress.feed("unrelated line") is None
    first = progress.feed("epoch=1 step=10/100 train_loss=1.0 samples_per_sec=20.0")
    assert first == "  training: epoch 1/2, step 10/100 (5%), 20.0 samples/s"
    now[0] += 50.0  # 10 more steps in 50 s: 5 s a step, 180 steps to go
    line = progress.feed("epoch=1 step=20/100 train_loss=0.9 samples_per_sec=21.5")
    assert line == "  training: epoch 1/2, step 20/100 (10%), 21.5 samples/s, ETA 15m00s"
    # The next job (a tuning trial after another, then the final fine-tune) starts its own ETA.
    now[0] += 600.0
    assert progress.feed("training on cpu: 640 rows, 1 epoch(s) x 20 steps of 32, ...") is None
    line = progress.feed("epoch=1 step=10/20 train_loss=1.0 samples_per_sec=6.6")
    assert line == "  training: epoch 1/1, step 10/20 (50%), 6.6 samples/s"
    now[0] += 20.0
    line = progress.feed("epoch=1 step=20/20 train_loss=0.9 samples_per_sec=8.0")
    assert line == "  training: epoch 1/1, step 20/20 (100%), 8.0 samples/s, ETA 0s"


def _args(**overrides) -> argparse.Namespace:
    values = {
        "learning_rate": 1e-4,
        "layerwise_lr_decay": 0.5,
        "head_learning_rate": 1e-3,
        "weight_decay": 0.01,
    }
    return argparse.Namespace(**(values | overrides))


def test_layerwise_learning_rates_decay_down_the_encoder(tmp_path: Path):
    from include.jobs import train
    from tests.test_train import make_tiny_bert

    model = train.build_model(str(make_tiny_bert(tmp_path / "tiny")), False)
    groups = train.parameter_groups(model, _args())
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    params = dict(model.named_parameters())
    top = max(int(n.split(".layer.")[1].split(".")[0]) for n in params if ".layer." in n)
    assert rate[id(params["classifier.weight"])] == 1e-3
    assert rate[id(params[f"bert.encoder.layer.{top}.output.dense.weight"])] == 1e-4
    assert rate[id(params["bert.encoder.layer.0.output.dense.weight"])] == pytest.approx(
        1e-4 * 0.5**top
    )
    embeddings = rate[id(params["bert.embeddings.word_embeddings.weight"])]
    assert embeddings == pytest.approx(1e-4 * 0.5 ** (top + 1))
    assert decay[id(params["bert.encoder.layer.0.output.dense.bias"])] == 0.0
    assert decay[id(params["bert.encoder.layer.0.output.dense.weight"])] == 0.01
    assert sum(len(g["params"]) for g in groups) == len(params)  # every parameter, once
    flat = train.parameter_groups(model, _args(layerwise_lr_decay=1.0, head_learning_rate=0.0))
    assert {g["lr"] for g in flat} == {1e-4}


class _OtherLakeServer:
    """Answers ``/ping`` as an endpoint server serving another lake does."""

    def __init__(self, lake: str):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                data = json.dumps({"status": "healthy", "lake": lake}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_local_preflight_refuses_a_server_for_another_lake_before_any_work(tmp_path: Path):
    from include.pipeline.targets.local.target import LocalTarget

    other = _OtherLakeServer(str(tmp_path / "first-demo-lake"))
    try:
        settings = pipeline_settings.load(
            {"PIPELINE_LAKE": str(tmp_path / "second"), "PIPELINE_ENDPOINT_PORT": str(other.port)}
        )
        with pytest.raises(RuntimeError, match="serves lake .*first-demo-lake.*PIPELINE_ENDPOINT"):
            LocalTarget(settings).preflight()
    finally:
        other.server.shutdown()
        other.server.server_close()


def test_every_local_run_names_a_server_for_another_lake_in_its_configuration_check(
    tmp_path: Path,
):
    """check_configuration's run_problems: a run from the UI or the scheduler is refused at its
    first task too, and nothing is started when no server answers."""
    from include.pipeline.targets.local.target import LocalTarget

    other = _OtherLakeServer(str(tmp_path / "first-demo-lake"))
    try:

        def problems(lake: Path, port: int) -> list[str]:
            env = {"PIPELINE_LAKE": str(lake), "PIPELINE_ENDPOINT_PORT": str(port)}
            return LocalTarget(pipeline_settings.load(env)).run_problems("", scheduled=False)

        (problem,) = problems(tmp_path / "second", other.port)
        assert "serves lake" in problem and "first-demo-lake" in problem
        assert "PIPELINE_ENDPOINT_PORT" in problem
        assert problems(tmp_path / "first-demo-lake", other.port) == []
    finally:
        other.server.shutdown()
        other.server.server_close()
    assert problems(tmp_path / "second", other.port) == []  # nothing answers: no problem
