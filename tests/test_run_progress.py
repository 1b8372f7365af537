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


def test_the_summary_and_the_report_card_list_the_reused_tasks():
    from include.pipeline.demo import report_card

    document = summary_doc.document(
        run_id="r2",
        dag_id="reviews_pipeline",
        target="local",
        steps={},
        states={"train_model": "success", "evaluate_model": "success"},
        reused={"train_model": "train-r1", "evaluate_model": "evaluate-r1"},
    )
    assert document["reused"] == {"evaluate_model": "evaluate-r1", "train_model": "train-r1"}
    card = report_card(document, locations={**LOCATIONS, "log": ""}).splitlines()
    assert (
        "  reused (no new job, same request as a finished one): "
        "evaluate_model (evaluate-r1), train_model (train-r1)"
    ) in card
    assert task_line("train_model", "reused", 0.4).split()[0] == "reused"


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


LOCATIONS = {
    "summary": "s3://reviews-pipeline/runs/key/summary.json (/lake/reviews-pipeline/runs/key)",
    "reports": "/lake/reviews-pipeline/runs/key",
    "reports_page": "http://127.0.0.1:8080/reviews/runs/run",
    "log": "/lake/reviews-pipeline/runs/key/demo.log",
}


def test_the_demo_ends_with_a_report_card_of_the_recorded_run(tmp_path: Path):
    from include.pipeline.demo import report_card
    from include.pipeline.targets.local.target import LocalTarget
    from tests.recorded_run import copy_recorded_run

    document = copy_recorded_run(tmp_path / "lake")
    notice = LocalTarget(None).endpoint_notice(document["deployment"])
    card = report_card(document, locations=LOCATIONS, notice=notice)
    lines = card.splitlines()
    assert len(lines) <= 40
    assert lines[0].startswith(f"Run {document['run_id']} of reviews_pipeline on local: SUCCESS")
    # The ARNs and names below are the local target's stand-ins, said in the summary's words.
    assert lines[1] == f"  {summary_doc.NAMES_NOTICE['local']}"
    assert "account 000000000000 is not an AWS account" in lines[1]
    header = lines.index("Leaderboard (test split, best by accuracy: *)")
    assert lines[header + 1].split() == [
        "candidate",
        "accuracy",
        "95%",
        "interval",
        "macro",
        "F1",
        "size",
        "ms/review",
        "training",
    ]
    best = document["leaderboard"]["entries"][0]
    latency = best["inference_ms_per_review"]  # two decimals under 0.1 ms, so it never reads 0.0
    assert lines[header + 2].split() == [
        "finetune",
        "*",
        f"{best['accuracy']:.3f}",
        *"[{:.3f}, {:.3f}]".format(*best["accuracy_interval"]).split(),
        f"{best['macro_f1']:.3f}",
        f"{best['model_size_bytes'] / 1024:.0f}",
        "KiB",
        f"{latency:.2f}" if latency < 0.1 else f"{latency:.1f}",
        f"{best['training_time_s']}",
        "s",
    ]
    # The recorded bias gate warned about one facet value; the best version awaits approval.
    assert "  bias:           1 violation(s), run continued (warn); e.g. DPL -0.320" in card
    assert "for product_category=Jackets (limit 0.2)" in card
    assert "  accuracy:       passed: the best candidate is registered" in lines
    registered = document["registration"]["model_package_arn"]
    assert f"  approval:       PendingManualApproval ({registered})" in lines
    assert "  finetune on endpoint reviews-sentiment at http://127.0.0.1:8765" in lines
    for where in LOCATIONS.values():
        assert where in card
    # The request printed is the one the endpoint notice renders for the served candidate.
    assert card.endswith(notice) and "curl -s -X POST" in notice
    assert "leaderboard.json" not in card and "s3://reviews-pipeline/raw/" not in card


def test_the_report_card_shows_every_candidate_and_a_stopped_gate():
    from include.pipeline.demo import report_card

    entries = [
        {
            "candidate": "autopilot",
            "accuracy": 0.71,
            "macro_f1": 0.70,
            "model_size_bytes": 3 * 2**20,
            "inference_ms_per_review": 2.25,
            "training_time_s": 51,
        },
        {
            "candidate": "finetune",
            "accuracy": 0.69,
            "macro_f1": 0.68,
            "model_size_bytes": 175 * 2**20,
            "inference_ms_per_review": 6.6,
            "training_time_s": 301,
        },
        {"candidate": "blazingtext", "accuracy": 0.49, "macro_f1": 0.41, "training_time_s": 43},
    ]
    document = {
        "run_id": "manual__1",
        "dag_id": "reviews_pipeline",
        "target": "local",
        "state": "success",
        "task_seconds": {"train_model": 301.0, "ingest_reviews": 4.0},
        "leaderboard": {"metric": "macro_f1", "best": "autopilot", "entries": entries},
        "registration": {"skipped": "accuracy 0.710 is below min_accuracy 0.75"},
    }
    card = report_card(document, locations={**LOCATIONS, "log": ""})
    lines = card.splitlines()
    assert lines[0] == (
        "Run manual__1 of reviews_pipeline on local: SUCCESS (2 tasks, 5.1 min of task time)"
    )
    header = lines.index("Leaderboard (test split, best by macro_f1: *)")
    rows = [line.split() for line in lines[header + 2 : header + 5]]
    assert rows == [
        ["autopilot", "*", "0.710", "0.700", "3.0", "MiB", "2.2", "51", "s"],
        ["finetune", "0.690", "0.680", "175.0", "MiB", "6.6", "301", "s"],
        ["blazingtext", "0.490", "0.410", "-", "-", "43", "s"],
    ]
    assert "  accuracy:       stopped: accuracy 0.710 is below min_accuracy 0.75" in lines
    assert "  nothing deployed" in lines
    assert "Full log" not in card and "curl" not in card and "approval" not in card
    assert lines[1] == f"  {summary_doc.NAMES_NOTICE['local']}"
    # On aws the names are AWS's own: no stand-in notice.
    aws_card = report_card({**document, "target": "aws"}, locations=LOCATIONS)
    assert aws_card.startswith("Run manual__1 of reviews_pipeline on aws: SUCCESS")
    assert "stand-ins" not in aws_card and "000000000000" not in aws_card


def test_a_retraining_run_shows_champion_and_challenger_on_the_same_rows(tmp_path: Path):
    from include.pipeline.demo import report_card
    from tests.recorded_run import copy_recorded_run

    document = copy_recorded_run(tmp_path / "lake")
    document["champion"] = {
        "champion": {
            "model_name": "reviews-finetune-abc",
            "accuracy": 0.702,
            "accuracy_interval": [0.648, 0.751],
            "n_samples": 300,
        },
        "challenger": {
            "candidate": "finetune",
            "accuracy": 0.731,
            "accuracy_interval": [0.678, 0.778],
            "n_samples": 300,
        },
        "same_rows": True,
        "decision": {"register": True, "why": "0.731 beats the champion's 0.702"},
    }
    document["ingestion"].update(reviews_this_file=250, reviews_total=850, files=2)
    lines = report_card(document, locations=LOCATIONS).splitlines()
    assert "  trained on 850 reviews from the lake's 2 files (250 from this one)" in lines
    at = lines.index("Champion vs challenger (the same test rows)")
    assert lines[at + 1 : at + 4] == [
        "  champion    reviews-finetune-abc: accuracy 0.702 [0.648, 0.751] on 300 rows",
        "  challenger  finetune: accuracy 0.731 [0.678, 0.778] on 300 rows",
        "  decision    registered: 0.731 beats the champion's 0.702",
    ]
    assert len(lines) <= 40
    # A first run has no champion: no such block.
    del document["champion"]
    assert "Champion vs challenger" not in report_card(document, locations=LOCATIONS)


def test_the_report_card_shows_the_canarys_traffic_steps_on_one_line(tmp_path: Path):
    """An update of a live endpoint: the summary's steps (from the host's update report) become
    one line of the card; a new endpoint (no steps) shows none."""
    from include.pipeline.demo import report_card
    from tests.recorded_run import copy_recorded_run

    document = copy_recorded_run(tmp_path / "lake")
    update_report = {
        "Outcome": "Promoted",
        "TrafficSteps": [
            {
                "NewFleetShare": 0.1,
                "Seconds": 2.04,
                "NewFleetInvocations": 7,
                "NewFleetFailedRequests": 0,
            },
            {
                "NewFleetShare": 1.0,
                "Seconds": 0.31,
                "NewFleetInvocations": 12,
                "NewFleetFailedRequests": 0,
            },
        ],
    }
    steps = summary_doc.traffic_steps(update_report)
    assert steps[0] == {"share": 0.1, "seconds": 2.04, "requests": 7, "failed_requests": 0}
    document["deployment"] = {**document["deployment"], "strategy": "canary"}
    without = report_card(document, locations=LOCATIONS).splitlines()
    document["deployment"]["traffic_steps"] = steps
    lines = report_card(document, locations=LOCATIONS).splitlines()
    assert [line for line in lines if line not in without] == [
        "  traffic moved to the new model: 10% for 2.0 s (7 requests, 0 failed) -> "
        "100% for 0.3 s (12 requests, 0 failed)"
    ]
    assert summary_doc.traffic_steps(None) == [] == summary_doc.traffic_steps({"Outcome": "x"})
    # A rolled-back update: nothing deployed, why, and the step it got to.
    document["deployment"] = {
        "skipped": "the update was rolled back: Alarm a fired",
        "traffic_steps": steps[:1],
    }
    lines = report_card(document, locations=LOCATIONS).splitlines()
    at = lines.index("  nothing deployed: the update was rolled back: Alarm a fired")
    assert lines[at + 1] == (
        "  traffic moved to the new model: 10% for 2.0 s (7 requests, 0 failed)"
    )
