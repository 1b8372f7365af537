"""The run summary's Airflow side: each step's entry from the tasks' XComs, written by the DAG's
teardown task whatever happened upstream. The document's shape is
:mod:`include.pipeline.documents.summary`; task ids are :mod:`include.pipeline.task_ids`.
"""

from __future__ import annotations

import logging
from typing import Any

from include.pipeline import candidates, storage, targets
from include.pipeline import task_ids as T
from include.pipeline.documents import evaluation as evaluation_doc
from include.pipeline.documents import summary as summary_doc
from include.pipeline.layout import RunLayout
from include.pipeline.settings import Settings

log = logging.getLogger(__name__)


def write(
    settings: Settings,
    *,
    run_id: str,
    dag_id: str,
    steps: dict,
    states: dict,
    started_at: str | None = None,
    durations: dict | None = None,
    reused: dict[str, str] | None = None,
) -> str:
    """Write the summary; ``steps`` maps step name -> its result (None when it did not run);
    ``reused``: task id -> the completed job it reused."""
    document = summary_doc.document(
        run_id=run_id,
        dag_id=dag_id,
        target=settings.target,
        steps=steps,
        states=states,
        started_at=started_at,
        durations=durations,
        reused=reused,
    )
    uri = RunLayout(settings, run_id).summary()
    storage.for_settings(settings).write(uri, summary_doc.to_bytes(document))
    return uri


def _first(*values):
    return next((v for v in values if v is not None), None)


def collect(settings: Settings, pull, params: dict, run_id: str) -> dict[str, Any]:
    """Every step's summary entry from the tasks' XComs; ``pull(task_id, key=None)``.

    A step that did not run (or was skipped by a gate) gets no entry, or its ``skipped`` reason.
    """
    from include.pipeline.requests.catalog import QUERIES
    from include.pipeline.requests.features import SPLITS

    layout = RunLayout(settings, run_id)
    steps: dict[str, Any] = {}  # summary_doc.Steps, filled from XCom values

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
                {
                    k: r.get(k)
                    for k in ("RuleConfigurationName", "RuleEvaluationStatus", "StatusDetails")
                }
                for r in (
                    (pull(T.CHECK_TRAINING_RULES) or {}).get("statuses")
                    or pull(T.WAIT_FOR_DEBUGGER_RULES)
                    or rules
                )
            ],
            "model_uri": trained.get("ModelArtifacts", {}).get("S3ModelArtifacts"),
            "training_seconds": trained.get("TrainingTimeInSeconds"),
            "profiler_report_uri": _profiler_report(trained, pull(T.CHECK_TRAINING_RULES)),
        }

    tuned = pull(T.TUNE)
    if tuned:
        from include.pipeline.tasks.candidates import choose_hyperparameters

        _, steps["tuning"] = choose_hyperparameters(params, tuned, pull(T.RECIPE_TRIAL))

    evaluated = pull(T.EVALUATE)
    if evaluated and "evaluation" in evaluated.get("OutputFiles", {}):
        report = evaluation_doc.from_job(evaluated)
        steps["evaluation"] = {
            "accuracy": report.accuracy,
            "accuracy_interval": list(report.accuracy_interval),
            "n_samples": report.n_samples,
            "per_category": {c: v.to_dict() for c, v in (report.per_category or {}).items()},
            "macro_f1": report.macro_f1,
            "uri": layout.evaluation_file(),
            "confusion_matrix_uri": layout.confusion_matrix(),
        }

    board = pull(T.RANK_CANDIDATES)
    if board:
        steps["leaderboard"] = {**board, "uri": layout.leaderboard()}
        from include.pipeline.tasks import retraining

        best = board.get("best")
        champion_request = pull(T.BUILD_CHAMPION_EVALUATION)
        steps["champion"] = retraining.comparison(
            board,
            pull(T.evaluate(best)) if best else None,
            pull(T.EVALUATE_CHAMPION) if champion_request else None,
            (pull(T.build_evaluation(best)) if best else None, champion_request),
            pull(T.BUILD_CHAMPION_EVALUATION, T.CHAMPION_SPLIT_KEY) if champion_request else None,
            params,
        )

    arn = pull(T.REGISTER)
    skipped = pull(T.SKIP_REGISTRATION)
    if arn:
        steps["registration"] = {
            "model_package_arn": arn,
            "status": registry_status(settings, arn) or params["model_approval"],
            "runners_up": [a for a in (pull(T.REGISTER_RUNNERS_UP) or []) if a],
        }
    elif skipped:
        steps["registration"] = skipped

    deployed = pull(T.DEPLOY) or {}
    endpoint = deployed.get("Endpoint")
    not_deployed = pull(T.SKIP_DEPLOYMENT)
    if endpoint:
        steps["deployment"] = {
            "endpoint_name": endpoint["EndpointName"],
            "endpoint_url": targets.load(settings).runtime_url,
            "strategy": params["deployment_strategy"],
            "candidate": (board or {}).get("best", candidates.PRIMARY.name),
            "variants": endpoint.get("ProductionVariants", []),
            "shadow_variants": endpoint.get("ShadowProductionVariants", []),
            "smoke_test": pull(T.SMOKE_TEST),
            "deleted_after_run": bool(pull(T.DELETE_TEST_ENDPOINT)),
        }
        steps_taken = summary_doc.traffic_steps(deployed.get("UpdateReport"))
        if steps_taken:
            steps["deployment"]["traffic_steps"] = steps_taken
    elif not_deployed:
        steps["deployment"] = not_deployed
    elif rolled_back := pull(T.DEPLOY, T.UPDATE_REPORT_KEY):
        steps["deployment"] = {
            "skipped": f"the update was rolled back: {rolled_back.get('FailureReason')}",
            "traffic_steps": summary_doc.traffic_steps(rolled_back),
        }
    elif skipped:
        steps["deployment"] = {"skipped": f"nothing was registered: {skipped['skipped']}"}
    return steps


def reused_jobs(pull, task_ids) -> dict[str, str]:
    """``{task_id: job name}`` of the tasks that reused a completed job (their XCom
    ``reused``) instead of running one."""
    from include.pipeline.targets.step_reuse import REUSED_KEY

    found = {task_id: pull(task_id, REUSED_KEY) for task_id in task_ids}
    return {task_id: name for task_id, name in found.items() if name}


def registry_status(settings: Settings, arn: str) -> str | None:
    """The version's approval status now (after an Approve or Reject in ``approve_model``),
    not the one it was registered with; ``None`` when the registry cannot say."""
    try:
        described = targets.client(settings, "sagemaker").describe_model_package(
            ModelPackageName=arn
        )
    except Exception as exc:  # the summary is written whatever happened
        log.warning("could not read the approval status of %s: %s", arn, exc)
        return None
    return described.get("ModelApprovalStatus")


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
    job_tasks = [t.task_id for t in ti.task.dag.tasks if getattr(t, "job_type", None)]
    uri = write(
        settings,
        run_id=run_id,
        dag_id=ti.dag_id,
        steps=steps,
        states=states,
        started_at=started.isoformat() if started else None,
        durations=durations,
        reused=reused_jobs(pull, [t for t in job_tasks if states.get(t) == "success"]),
    )
    print(f"Run summary: {uri}")
    return uri


def _profiler_report(trained: dict, checked: dict | None) -> str | None:
    """The profiler report beside the training job: the pipeline rule evaluation's, or, in the
    ``managed`` mode, Debugger's own ProfilerReport output (when the job asked for it)."""
    if checked and checked.get("profiler_report_uri"):
        return checked["profiler_report_uri"]
    if trained.get("ProfilerRuleConfigurations") and "OutputDataConfig" in trained:
        from include.pipeline.requests.training import profiler_report_uri

        return profiler_report_uri(trained)
    return None
