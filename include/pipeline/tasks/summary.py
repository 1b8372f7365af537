"""The run summary's Airflow side: each step's entry from the tasks' XComs, written by the DAG's
teardown task whatever happened upstream. The document's shape is
:mod:`include.pipeline.documents.summary`; task ids are :mod:`include.pipeline.task_ids`.
"""

from __future__ import annotations

from include.pipeline import storage, targets
from include.pipeline import task_ids as T
from include.pipeline.documents import evaluation as evaluation_doc
from include.pipeline.documents import summary as summary_doc
from include.pipeline.layout import RunLayout
from include.pipeline.settings import Settings


def write(
    settings: Settings,
    *,
    run_id: str,
    dag_id: str,
    steps: dict,
    states: dict,
    started_at: str | None = None,
    durations: dict | None = None,
) -> str:
    """Write the summary; ``steps`` maps step name -> its result (None when it did not run)."""
    document = summary_doc.document(
        run_id=run_id,
        dag_id=dag_id,
        target=settings.target,
        steps=steps,
        states=states,
        started_at=started_at,
        durations=durations,
    )
    uri = RunLayout(settings, run_id).summary()
    storage.for_settings(settings).write(uri, summary_doc.to_bytes(document))
    return uri


def _first(*values):
    return next((v for v in values if v is not None), None)


def collect(settings: Settings, pull, params: dict, run_id: str) -> summary_doc.Steps:
    """Every step's summary entry from the tasks' XComs; ``pull(task_id, key=None)``.

    A step that did not run (or was skipped by a gate) gets no entry, or its ``skipped`` reason.
    """
    from include.pipeline.requests.catalog import QUERIES
    from include.pipeline.requests.features import SPLITS

    layout = RunLayout(settings, run_id)
    steps: summary_doc.Steps = {}

    ingested = pull(T.INGEST)
    if ingested:
        queries = {name: pull(T.query(name)) for name in QUERIES}
        steps["ingestion"] = {
            **ingested,
            "queries": {name: layout.query_result(qid) for name, qid in queries.items() if qid},
        }

    bias = pull(T.BIAS_GATE, T.BIAS_VERDICT_KEY)
    if bias:
        steps["bias"] = dict(bias)
        balanced = pull(T.BUILD_BALANCED_BIAS_REQUEST)
        if balanced and pull(T.DETECT_BALANCED_BIAS):
            from include.pipeline.tasks.bias import result

            steps["bias"]["balanced"] = result(settings, balanced, params)

    feature_group = (pull(T.CREATE_FEATURE_GROUP) or {}).get("FeatureGroup")
    prepared = pull(T.PREPARE_FEATURES)
    if feature_group and prepared:
        store = feature_group["OfflineStoreConfig"]["S3StorageConfig"]
        splits = prepared.get("OutputFiles", {}).get("prepare", {}).get("splits", {})
        training_set = {split: pull(T.training_set_query(split)) for split in SPLITS}
        steps["features"] = {
            **{split: splits.get(split) for split in SPLITS},
            "feature_group": feature_group["FeatureGroupName"],
            "offline_store_uri": _first(store.get("ResolvedOutputS3Uri"), store.get("S3Uri")),
            "training_set": {
                split: layout.training_set_file(split, qid)
                for split, qid in training_set.items()
                if qid
            },
        }

    trained = (pull(T.TRAIN) or {}).get("Training")
    if trained:
        rules = [
            *trained.get("DebugRuleEvaluationStatuses", []),
            *trained.get("ProfilerRuleEvaluationStatuses", []),
        ]
        steps["training"] = {
            "job_name": trained["TrainingJobName"],
            "metrics": {
                m["MetricName"]: m["Value"] for m in trained.get("FinalMetricDataList", [])
            },
            "rule_statuses": [
                {k: r.get(k) for k in ("RuleConfigurationName", "RuleEvaluationStatus")}
                for r in (
                    (pull(T.CHECK_TRAINING_RULES) or {}).get("statuses")
                    or pull(T.WAIT_FOR_DEBUGGER_RULES)
                    or rules
                )
            ],
            "model_uri": trained.get("ModelArtifacts", {}).get("S3ModelArtifacts"),
            "training_seconds": trained.get("TrainingTimeInSeconds"),
        }

    evaluated = pull(T.EVALUATE)
    if evaluated and "evaluation" in evaluated.get("OutputFiles", {}):
        report = evaluation_doc.from_job(evaluated)
        steps["evaluation"] = {
            "accuracy": report.accuracy,
            "macro_f1": report.macro_f1,
            "uri": layout.evaluation_file(),
            "confusion_matrix_uri": layout.confusion_matrix(),
        }

    board = pull(T.RANK_CANDIDATES)
    if board:
        steps["leaderboard"] = {**board, "uri": layout.leaderboard()}

    arn = pull(T.REGISTER)
    skipped = pull(T.SKIP_REGISTRATION)
    if arn:
        steps["registration"] = {
            "model_package_arn": arn,
            "status": params["model_approval"],
            "runners_up": [a for a in (pull(T.REGISTER_RUNNERS_UP) or []) if a],
        }
    elif skipped:
        steps["registration"] = skipped

    endpoint = (pull(T.DEPLOY) or {}).get("Endpoint")
    not_deployed = pull(T.SKIP_DEPLOYMENT)
    if endpoint:
        steps["deployment"] = {
            "endpoint_name": endpoint["EndpointName"],
            "endpoint_url": targets.load(settings).runtime_url,
            "strategy": params["deployment_strategy"],
            "candidate": (board or {}).get("best", "finetune"),
            "variants": endpoint.get("ProductionVariants", []),
            "shadow_variants": endpoint.get("ShadowProductionVariants", []),
            "smoke_test": pull(T.SMOKE_TEST),
            "deleted_after_run": bool(pull(T.DELETE_TEST_ENDPOINT)),
        }
    elif not_deployed:
        steps["deployment"] = not_deployed
    return steps


def write_from_task(settings: Settings, *, ti, dag_run, params: dict) -> str:
    """Gather the step results from XCom and write the summary (the teardown task's body)."""
    run_id = dag_run.run_id
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})
    states.pop(ti.task_id, None)
    durations = summary_doc.task_seconds(ti.get_task_breadcrumbs(dag_id=ti.dag_id, run_id=run_id))

    def pull(task_id: str, key: str | None = None):
        return ti.xcom_pull(task_ids=task_id, key=key) if key else ti.xcom_pull(task_ids=task_id)

    steps = collect(settings, pull, params, run_id)
    started = getattr(dag_run, "start_date", None)
    uri = write(
        settings,
        run_id=run_id,
        dag_id=ti.dag_id,
        steps=steps,
        states=states,
        started_at=started.isoformat() if started else None,
        durations=durations,
    )
    print(f"Run summary: {uri}")
    return uri
