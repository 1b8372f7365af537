"""A recorded run of the main DAG's document-producing steps, for the reports page's tests.

The documents are the real ones: ``ingest()`` on the generated sample, ``train.py`` on a tiny
random BERT (its metric history lands in the model folder), ``evaluate.py`` on the packed model
(``evaluation.json`` + confusion matrix into the run's evaluation folder), the bias gate's
verdict over a Clarify ``analysis.json``, and the summary written by the real
:func:`include.pipeline.tasks.summary.collect` / ``write`` from the XComs those tasks return,
keyed by the DAG's own task ids. Only the operators' describe results (training job, feature
group, endpoint) are built here, in the shape the provider's operators push. A second, older
run ingests another file and stops there (its summary from the same real code).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest

from include.pipeline import settings as pipeline_settings
from include.pipeline.layout import run_key
from tests.test_bias_gate import pre_training_analysis

RUN_ID = "manual__2025-03-01T10:00:00+00:00"
RUN_KEY = run_key(RUN_ID)  # its folder under runs/
# An older run that stopped after ingestion (its bias job failed): real ingest(), real summary.
OLDER_RUN_ID = "scheduled__2025-02-01T00:00:00+00:00"
ENDPOINT = "reviews-sentiment"
JOB_NAME = "reviews-train-1"
ANALYSIS = pre_training_analysis(
    [
        {
            "value_or_threshold": value,
            "metrics": [
                {"name": "CI", "description": "Class Imbalance (CI)", "value": ci},
                {"name": "DPL", "description": "Difference in labels", "value": dpl},
            ],
        }
        for value, ci, dpl in (("Dresses", 0.42, 0.05), ("Jackets", -0.3, -0.32))
    ]
)


@contextlib.contextmanager
def _env(**values: str):
    """The job's environment variables for the block (pytest restores them after)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in values.items():
            patch.setenv(key, value)
        yield


def _train_and_evaluate(work: Path, settings, layout) -> tuple[dict, dict]:
    """train.py then evaluate.py for real; returns (train_model's XCom, evaluate_model's)."""
    from include.jobs import evaluate, train
    from include.pipeline.requests.training import METRIC_DEFINITIONS
    from include.pipeline.targets.local.lake import resolve
    from tests.test_train import args, make_rows, make_tiny_bert, write_split

    tiny = make_tiny_bert(work / "tiny")
    model_dir = work / "model"
    with _env(
        SM_CHANNEL_TRAIN=str(write_split(work / "train", make_rows(96, 1))),
        SM_CHANNEL_VALIDATION=str(write_split(work / "validation", make_rows(24, 2))),
        SM_MODEL_DIR=str(model_dir),
        SM_OUTPUT_DATA_DIR=str(work / "output"),
        SM_CHECKPOINT_DIR=str(work / "checkpoints"),
    ):
        history = train.main(args(tiny, epochs=2))
    model_uri = layout.model(JOB_NAME)
    archive = resolve(model_uri, settings.lake)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for f in model_dir.iterdir():
            tar.add(f, arcname=f.name)
    out = resolve(layout.evaluation(), settings.lake)
    test_dir = write_split(work / "test", make_rows(30, 3))
    report = evaluate.main(
        ["--model_path", str(archive), "--test_path", str(test_dir), "--output_dir", str(out)]
    )
    names = dict(
        zip(
            ("train_loss", "val_loss", "val_acc"),
            (m["Name"] for m in METRIC_DEFINITIONS),
            strict=True,
        )
    )
    trained = {
        "Training": {
            "TrainingJobName": JOB_NAME,
            "FinalMetricDataList": [
                {"MetricName": names[k], "Value": v[-1]}
                for k, v in history.items()
                if v and k in names
            ],
            "DebugRuleEvaluationStatuses": [
                {
                    "RuleConfigurationName": "LossNotDecreasing",
                    "RuleEvaluationStatus": "NoIssuesFound",
                }
            ],
            "ModelArtifacts": {"S3ModelArtifacts": model_uri},
            "OutputDataConfig": {"S3OutputPath": layout.training()},
            "AlgorithmSpecification": {"TrainingImage": "pytorch-training:2"},
            "TrainingTimeInSeconds": 12,
        }
    }
    # What SageMaker uploads from /opt/ml/output/data: the history and the profiler's recording.
    from include.pipeline.requests.training import output_data_uri

    output_archive = resolve(output_data_uri(trained["Training"]), settings.lake)
    output_archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(output_archive, "w:gz") as tar:
        tar.add(work / "output", arcname=".")
    return trained, {"OutputFiles": {"evaluation": report}}


def register(lake: Path, model_uri: str, layout) -> str:
    """A version in the lake's real registry (DuckDB), as register_model_version makes it."""
    from include.pipeline.targets.local.sagemaker import registry

    group = "ReviewsSentiment"
    package = {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": "PendingManualApproval",
        "InferenceSpecification": {
            "Containers": [{"Image": "pytorch-inference:2", "ModelDataUrl": model_uri}],
            "SupportedContentTypes": ["application/jsonlines"],
            "SupportedResponseMIMETypes": ["application/jsonlines"],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": layout.evaluation_file(),
                }
            }
        },
        "CustomerMetadataProperties": {"run_id": RUN_ID, "data_hash": "abc123<script>"},
    }
    return registry.register_model_version({"ModelPackageGroupName": group}, package, lake)


def _record(lake: Path) -> None:
    from include.pipeline import storage
    from include.pipeline import task_ids as T
    from include.pipeline.documents import bias as bias_doc
    from include.pipeline.layout import RunLayout
    from include.pipeline.stages.summary import ENTRIES
    from include.pipeline.tasks import bias, summary
    from include.pipeline.tasks.ingest import ingest

    settings = pipeline_settings.load({"PIPELINE_LAKE": str(lake), "PIPELINE_TARGET": "local"})
    layout = RunLayout(settings, RUN_ID)
    store = storage.for_settings(settings)
    ingested = ingest(settings, input_uri="")
    store.write(layout.bias_analysis("raw"), json.dumps(ANALYSIS).encode())
    store.write(layout.bias_report("raw"), b"<html><body><h1>Bias report</h1></body></html>")
    gate = bias.apply_gate(ANALYSIS, None, mode="warn")
    verdict = bias_doc.verdict(
        analysis_uri=layout.bias_analysis("raw"),
        report_uri=layout.bias_report("raw"),
        violations=gate["violations"],
        mode="warn",
        notes=[bias.cddl_note({})],
    )
    with tempfile.TemporaryDirectory(prefix="recorded-run-") as work:
        trained, evaluated = _train_and_evaluate(Path(work), settings, layout)
    arn = register(lake, trained["Training"]["ModelArtifacts"]["S3ModelArtifacts"], layout)
    from include.pipeline.tasks import candidates

    board = candidates.leaderboard(
        settings,
        {"candidates": ["finetune"], "leaderboard_metric": "accuracy"},
        store,
        run_id=RUN_ID,
        results={"finetune": (trained, evaluated)},
    )
    from include.pipeline.params import PARAMS
    from include.pipeline.tasks import training

    checked = training.check_rules(
        settings, {name: p.value for name, p in PARAMS.items()}, trained
    )  # the pipeline rules mode: the rules' statuses and the profiler report beside the job
    best_trial = {
        "TrainingJobName": "tune-abc-001",
        "TunedHyperParameters": {"learning_rate": "4.3e-05", "train_batch_size": "16"},
        "FinalHyperParameterTuningJobObjectiveMetric": {
            "MetricName": "validation:accuracy",
            "Value": 0.69,
        },
    }
    recipe = {
        "TrainingJobName": "recipe-abc",
        "FinalMetricDataList": [{"MetricName": "validation:accuracy", "Value": 0.70}],
    }
    xcoms = {
        (T.TUNE, None): {"Tuning": {"BestTrainingJob": best_trial}},
        (T.RECIPE_TRIAL, None): {"Training": recipe},
        (T.CHECK_TRAINING_RULES, None): checked,
        (T.RANK_CANDIDATES, None): board,
        (T.INGEST, None): ingested,
        (T.BIAS_GATE, T.BIAS_VERDICT_KEY): verdict,
        (T.TRAIN, None): trained,
        (T.EVALUATE, None): evaluated,
        (T.REGISTER, None): arn,
        (T.DEPLOY, None): {
            "Endpoint": {
                "EndpointName": ENDPOINT,
                "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentWeight": 1.0}],
            }
        },
    }
    params = {
        "model_approval": "PendingManualApproval",
        "deployment_strategy": "canary",
        "learning_rate": 8e-5,
        "train_batch_size": 16,
        "min_accuracy": 0.6,
        "endpoint_name": ENDPOINT,
    }
    steps = summary.collect(
        settings, lambda t, key=None: xcoms.get((t, key)), params, RUN_ID, ENTRIES
    )
    summary.write(
        settings,
        run_id=RUN_ID,
        dag_id="reviews_pipeline",
        steps=steps,
        states={T.INGEST: "success", T.TRAIN: "success", T.EVALUATE: "success"},
        started_at="2025-03-01T10:00:00+00:00",
    )


def _record_partial(lake: Path) -> None:
    """The older run: another file ingested, then the bias job failed; nothing else ran."""
    from include.pipeline import sample
    from include.pipeline import task_ids as T
    from include.pipeline.stages.summary import ENTRIES
    from include.pipeline.tasks import summary
    from include.pipeline.tasks.ingest import ingest

    settings = pipeline_settings.load({"PIPELINE_LAKE": str(lake), "PIPELINE_TARGET": "local"})
    source = lake / "inputs" / "february.csv"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(sample.csv_bytes(n=200, seed=2))
    xcoms = {T.INGEST: ingest(settings, input_uri=str(source))}
    steps = summary.collect(settings, lambda t, key=None: xcoms.get(t), {}, OLDER_RUN_ID, ENTRIES)
    summary.write(
        settings,
        run_id=OLDER_RUN_ID,
        dag_id="reviews_pipeline",
        steps=steps,
        states={T.INGEST: "success", T.BIAS_GATE: "upstream_failed"},
        started_at="2025-02-01T00:00:00+00:00",
    )


@functools.cache
def _recorded() -> Path:
    lake = Path(tempfile.mkdtemp(prefix="recorded-lake-"))
    atexit.register(shutil.rmtree, lake, ignore_errors=True)
    _record(lake)
    _record_partial(lake)
    return lake


def summary_path(lake: Path, run_id: str = RUN_ID) -> Path:
    """Where a run's summary lies in ``lake`` (the run's folder is its key, not its id)."""
    from include.pipeline.layout import RunLayout
    from include.pipeline.targets.local.lake import resolve

    settings = pipeline_settings.load({"PIPELINE_LAKE": str(lake), "PIPELINE_TARGET": "local"})
    return resolve(RunLayout(settings, run_id).summary(), lake)


def copy_recorded_run(lake: Path) -> dict:
    """The recorded runs' lake copied to ``lake``; returns the full run's summary."""
    shutil.copytree(_recorded(), lake, dirs_exist_ok=True)
    return json.loads(summary_path(lake).read_text())
