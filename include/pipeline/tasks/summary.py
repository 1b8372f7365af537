"""The run summary: what each step produced, as one JSON document per DAG run.

Written at ``s3://<bucket>/runs/<run_id>/summary.json`` by the DAG's teardown task, whatever
happened upstream; top-level keys are the step names.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from include.pipeline import storage
from include.pipeline.settings import Settings

STEPS = (
    "ingestion",
    "bias",
    "features",
    "training",
    "evaluation",
    "registration",
    "deployment",
)


def summary_uri(settings: Settings, run_id: str) -> str:
    return settings.run_uri(run_id, "summary.json")


def write(
    settings: Settings,
    *,
    run_id: str,
    dag_id: str,
    steps: dict,
    states: dict,
    started_at: str | None = None,
) -> str:
    """Write the summary; ``steps`` maps step name -> its result (None when it did not run)."""
    unknown = set(steps) - set(STEPS)
    assert not unknown, f"unknown summary steps {unknown}"
    failed = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed"))
    document = {
        "run_id": run_id,
        "dag_id": dag_id,
        "target": settings.target,
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(),
        "state": "failed" if failed else "success",
        "failed_tasks": failed,
        "task_states": states,
        **{name: steps[name] for name in STEPS if steps.get(name) is not None},
    }
    uri = summary_uri(settings, run_id)
    storage.for_settings(settings).write(
        uri, json.dumps(document, indent=2, sort_keys=False, default=str).encode()
    )
    return uri


def _first(*values):
    return next((v for v in values if v is not None), None)


def collect(settings: Settings, pull, params: dict, run_id: str) -> dict:
    """Every step's summary entry from the tasks' XComs; ``pull(task_id, key=None)``.

    A step that did not run (or was skipped by a gate) gets no entry, or its ``skipped`` reason.
    """
    from include.pipeline.requests.catalog import QUERIES, query_output_location
    from include.pipeline.requests.features import SPLITS
    from include.pipeline.tasks.features import training_set_uri

    output = query_output_location(settings, run_id)
    steps: dict = {}

    ingested = pull("ingest_reviews")
    if ingested:
        queries = {name: pull(f"query_{name}") for name in QUERIES}
        steps["ingestion"] = {
            **ingested,
            "queries": {name: f"{output}{qid}.csv" for name, qid in queries.items() if qid},
        }

    bias = pull("bias_gate", "bias")
    if bias:
        steps["bias"] = dict(bias)
        balanced = pull("build_balanced_bias_request")
        if balanced and pull("detect_balanced_bias"):
            from include.pipeline.tasks.bias import result

            steps["bias"]["balanced"] = result(settings, balanced, params)

    feature_group = (pull("create_feature_group") or {}).get("FeatureGroup")
    prepared = pull("prepare_features")
    if feature_group and prepared:
        store = feature_group["OfflineStoreConfig"]["S3StorageConfig"]
        splits = prepared.get("OutputFiles", {}).get("prepare", {}).get("splits", {})
        training_set = {split: pull(f"query_training_set_{split}") for split in SPLITS}
        steps["features"] = {
            **{split: splits.get(split) for split in SPLITS},
            "feature_group": feature_group["FeatureGroupName"],
            "offline_store_uri": _first(store.get("ResolvedOutputS3Uri"), store.get("S3Uri")),
            "training_set": {
                split: f"{training_set_uri(settings, run_id, split)}{qid}.csv"
                for split, qid in training_set.items()
                if qid
            },
        }

    trained = (pull("train_model") or {}).get("Training")
    if trained:
        job = trained["TrainingJobName"]
        rules = [
            *trained.get("DebugRuleEvaluationStatuses", []),
            *trained.get("ProfilerRuleEvaluationStatuses", []),
        ]
        steps["training"] = {
            "job_name": job,
            "metrics": {
                m["MetricName"]: m["Value"] for m in trained.get("FinalMetricDataList", [])
            },
            "rule_statuses": [
                {k: r.get(k) for k in ("RuleConfigurationName", "RuleEvaluationStatus")}
                for r in (pull("wait_for_debugger_rules") or rules)
            ],
            "model_uri": trained.get("ModelArtifacts", {}).get("S3ModelArtifacts"),
            "metrics_uri": f"{trained['OutputDataConfig']['S3OutputPath']}/{job}/output/metrics.json",
        }

    evaluated = pull("evaluate_model")
    if evaluated and "evaluation" in evaluated.get("OutputFiles", {}):
        from include.pipeline.tasks.registration import evaluation_uri
        from include.pipeline.tasks.training import metrics

        uri = evaluation_uri(evaluated)
        steps["evaluation"] = {
            **metrics(evaluated["OutputFiles"]["evaluation"]),
            "uri": uri,
            "confusion_matrix_uri": uri.rsplit("/", 1)[0] + "/confusion_matrix.png",
        }

    arn = pull("register_model_version")
    skipped = pull("skip_registration")
    if arn:
        steps["registration"] = {"model_package_arn": arn, "status": params["model_approval"]}
    elif skipped:
        steps["registration"] = skipped

    endpoint = (pull("deploy_endpoint") or {}).get("Endpoint")
    not_deployed = pull("skip_deployment")
    if endpoint:
        steps["deployment"] = {
            "endpoint_name": endpoint["EndpointName"],
            "endpoint_url": settings.endpoint_url
            if settings.is_local
            else f"https://runtime.sagemaker.{settings.region}.amazonaws.com",
            "strategy": params["deployment_strategy"],
            "variants": endpoint.get("ProductionVariants", []),
            "shadow_variants": endpoint.get("ShadowProductionVariants", []),
            "smoke_test": pull("smoke_test_endpoint"),
            "deleted_after_run": bool(pull("delete_test_endpoint")),
        }
    elif not_deployed:
        steps["deployment"] = not_deployed
    return steps


def write_from_task(settings: Settings, *, ti, dag_run, params: dict) -> str:
    """Gather the step results from XCom and write the summary (the teardown task's body)."""
    run_id = dag_run.run_id
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})
    states.pop(ti.task_id, None)

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
    )
    print(f"Run summary: {uri}")
    return uri


def _table(rows: dict, key: str, value: str = "count") -> list[str]:
    width = max([len(str(k)) for k in rows] + [len(key)])
    return [f"    {key:<{width}}  {value}"] + [f"    {k!s:<{width}}  {v}" for k, v in rows.items()]


def render_text(document: dict) -> str:
    """The summary as a person reads it in a terminal: scalars inline, counts as small tables."""
    lines = [
        f"Run {document.get('run_id')} of {document.get('dag_id')} on target "
        f"{document.get('target')}: {document.get('state', '?').upper()}"
    ]
    if document.get("failed_tasks"):
        lines.append(f"  failed tasks: {', '.join(document['failed_tasks'])}")
    for step in STEPS:
        entry = document.get(step)
        if not entry:
            continue
        lines.append(f"\n[{step}]")
        for key, value in entry.items():
            if (
                isinstance(value, dict)
                and value
                and all(isinstance(v, int | float) for v in value.values())
            ):
                lines.append(f"  {key}:")
                lines.extend(_table(value, key.removeprefix("by_")))
            elif isinstance(value, dict | list):
                lines.append(f"  {key}: {json.dumps(value, default=str)}")
            else:
                lines.append(f"  {key}: {value}")
    return "\n".join(lines)
