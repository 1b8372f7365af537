"""
### Reviews pipeline: raw reviews to a deployed sentiment model

Takes the Women's E-Commerce Clothing Reviews (raw CSV) through the steps of the AWS
"Practical Data Science" course as one production pipeline:

1. **ingest** to the lake (raw copy by content hash, transform, quarantine) and register the
   partition in the **Glue catalog**; **Athena** statistics.
2. **Clarify** pre-training bias report and the **bias gate** (fail or warn).
3. **Prepare** (BERT tokenization processing job) into the **Feature Store**; bias report of
   the balanced data.
4. **Train** (PyTorch script mode) with **Debugger** rules and the profiler; wait for the rules.
5. **Evaluate** on the test split; **accuracy gate**; **Model Registry** version.
6. **Deploy** an approved version (blue/green canary / linear / all at once, or shadow),
   **smoke test** it; optional teardown of the endpoint.

Every step builds one AWS request (`include/pipeline/requests/`). With `PIPELINE_TARGET=aws` the
Amazon provider's operators send it; with `local` (the default) the same request runs on embedded
engines. The run summary lands at `s3://<bucket>/runs/<run_id>/summary.json`.

Trigger it from the form (**Trigger DAG w/ config**): set `input_uri` to your file, or leave it
empty for the generated sample. New files in `s3://<bucket>/incoming/` start it too
(`reviews_arrival`).
"""

from __future__ import annotations

from airflow.sdk import DAG, chain, task, teardown

from include.pipeline import arrival, targets
from include.pipeline import settings as pipeline_settings
from include.pipeline.dag_defaults import DEFAULT_ARGS, START_DATE
from include.pipeline.params import PARAMS
from include.pipeline.requests import catalog

SETTINGS = pipeline_settings.load()
ops = targets.operators(SETTINGS)
RUN_ID = "{{ run_id }}"

with DAG(
    dag_id="reviews_pipeline",
    description="Raw product reviews -> catalog -> bias -> features -> model -> endpoint",
    doc_md=__doc__,
    schedule=arrival.main_schedule(SETTINGS),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    params=PARAMS,
    tags=["reviews", "sagemaker", "mlops", SETTINGS.target],
    template_searchpath=[str(pipeline_settings.REPO_ROOT / "include" / "sql")],
    default_args=DEFAULT_ARGS,
) as dag:
    # ----------------------------------------------------------------- ingest, catalog, stats
    @task(task_id="ingest_reviews")
    def ingest_reviews(params: dict, ti=None) -> dict:
        """Raw copy by content hash, transform as the course does, quarantine bad rows."""
        from include.pipeline.tasks.ingest import ingest_task

        result = ingest_task(SETTINGS, params)
        ti.xcom_push(key="raw_hash", value=result["raw_hash"])
        return result

    @task(task_id="build_partition_input")
    def build_partition_input(ingested: dict) -> dict:
        return catalog.partition_input(SETTINGS, ingested["raw_hash"])

    ingested = ingest_reviews()
    create_glue_database = ops.GlueCatalogCreateDatabaseOperator(
        task_id="create_glue_database",
        database_name=SETTINGS.glue_database,
        description=catalog.database_input(SETTINGS)["Description"],
        location_uri=catalog.database_input(SETTINGS)["LocationUri"],
    )
    create_glue_table = ops.GlueCatalogCreateTableOperator(
        task_id="create_glue_table",
        database_name=SETTINGS.glue_database,
        table_name=catalog.TABLE,
        table_input=catalog.table_input(SETTINGS),
    )
    register_partition = ops.GlueCatalogCreatePartitionOperator(
        task_id="register_partition",
        database_name=SETTINGS.glue_database,
        table_name=catalog.TABLE,
        partition_input=build_partition_input(ingested),
    )
    queries = [
        ops.AthenaOperator(
            task_id=f"query_{name}",
            query=f"{name}.sql",
            database=SETTINGS.glue_database,
            output_location=catalog.query_output_location(SETTINGS, RUN_ID),
        )
        for name in catalog.QUERIES
    ]

    # ----------------------------------------------------------------- pre-training bias
    @task(task_id="build_bias_request")
    def build_bias_request(ingested: dict, params: dict, run_id=None) -> dict:
        from include.pipeline.tasks import bias

        dataset = ingested["dataset_csv_uri"].rsplit("/", 1)[0] + "/"
        return bias.build_request(SETTINGS, params, run_id=run_id, dataset_uri=dataset)

    bias_request = build_bias_request(ingested)
    detect_bias = ops.SageMakerProcessingOperator(
        task_id="detect_pretraining_bias", config=bias_request
    )

    @task.branch(task_id="bias_gate")
    def bias_gate(request: dict, params: dict, ti=None) -> str:
        """Thresholds from the Params; `fail` mode stops the run, `warn` continues."""
        from include.pipeline.tasks import bias

        verdict = bias.result(SETTINGS, request, params)
        ti.xcom_push(key="bias", value=verdict)
        if verdict["violations"] and params["bias_gate_mode"] == "fail":
            return "stop_on_bias"
        return "publish_code"

    @task(task_id="stop_on_bias")
    def stop_on_bias(ti=None) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from include.pipeline.bias_gate import format_violations

        violations = ti.xcom_pull(task_ids="bias_gate", key="bias")["violations"]
        raise AirflowFailException(
            f"bias gate failed: {len(violations)} violation(s)\n{format_violations(violations)}"
        )

    # ----------------------------------------------------------------- features
    @task(task_id="publish_code")
    def publish_code() -> dict:
        """The job scripts, content-addressed in S3 (loose files + sourcedir.tar.gz)."""
        from include.pipeline.tasks.code import publish

        return publish(SETTINGS)

    @task(task_id="build_feature_group_request", multiple_outputs=True)
    def build_feature_group_request(params: dict) -> dict:
        from include.pipeline.tasks import features

        return features.feature_group_request(SETTINGS, params)

    @task(task_id="build_prepare_request")
    def build_prepare_request(ingested: dict, code: dict, params: dict, dag_run=None) -> dict:
        from include.pipeline.tasks import features

        return features.prepare_request(
            SETTINGS,
            params,
            run_id=dag_run.run_id,
            event_time=features.event_time(dag_run.run_after),
            dataset_uri=ingested["dataset_csv_uri"].rsplit("/", 1)[0] + "/",
            code_uri=code["code_uri"],
        )

    code = publish_code()
    feature_group = build_feature_group_request()
    create_feature_group = ops.SageMakerCreateFeatureGroupOperator(
        task_id="create_feature_group", config=feature_group
    )
    wait_for_feature_group = ops.SageMakerFeatureGroupSensor(
        task_id="wait_for_feature_group", feature_group_name=feature_group["FeatureGroupName"]
    )
    prepare_features = ops.SageMakerProcessingOperator(
        task_id="prepare_features",
        config=build_prepare_request(ingested, code),
        output_files_to_xcom=[
            {
                "output_name": "sentiment-features",
                "file_name": "summary-algo-1.json",
                "result_name": "prepare",
            }
        ],
    )

    @task(task_id="build_training_set_queries", multiple_outputs=True)
    def build_training_set_queries(feature_group: dict, dag_run=None) -> dict:
        """One query per split over the offline store: the latest record of each review."""
        from include.pipeline.tasks import features

        return features.training_set_queries(
            feature_group["FeatureGroup"], features.event_time(dag_run.run_after)
        )

    training_set_queries = build_training_set_queries(create_feature_group.output)
    query_training_set = [
        ops.AthenaOperator(
            task_id=f"query_training_set_{split}",
            query=training_set_queries[split],
            database="sagemaker_featurestore",
            output_location=f"{SETTINGS.run_uri(RUN_ID, 'training-set', split)}/",
        )
        for split in ("train", "validation", "test")
    ]

    @task(task_id="build_balanced_bias_request")
    def build_balanced_bias_request(params: dict, run_id=None) -> dict:
        """The same bias analysis over the balanced training split (before vs after)."""
        from include.pipeline.tasks import bias, features

        return bias.build_request(
            SETTINGS,
            params,
            run_id=run_id,
            dataset_uri=features.balanced_uri(SETTINGS, run_id),
            stage="balanced",
            headers=bias.BALANCED_HEADERS,
        )

    balanced_bias_request = build_balanced_bias_request()
    detect_balanced_bias = ops.SageMakerProcessingOperator(
        task_id="detect_balanced_bias", config=balanced_bias_request
    )

    # ----------------------------------------------------------------- training
    @task(task_id="build_training_request")
    def build_training_request(code: dict, params: dict, run_id=None) -> dict:
        from include.pipeline.tasks import training

        return training.training_request(
            SETTINGS, params, run_id=run_id, sourcedir_uri=code["sourcedir_uri"]
        )

    training_request = build_training_request(code)
    train_model = ops.SageMakerTrainingOperator(task_id="train_model", config=training_request)
    wait_for_debugger_rules = ops.SageMakerDebugRulesSensor(
        task_id="wait_for_debugger_rules",
        job_name="{{ ti.xcom_pull(task_ids='train_model')['Training']['TrainingJobName'] }}",
        fail_on_issues="{{ params.rules_fail_on_issues }}",
    )

    # ----------------------------------------------------------------- evaluation and gate
    @task(task_id="build_evaluation_request")
    def build_evaluation_request(code: dict, trained: dict, run_id=None) -> dict:
        from include.pipeline.tasks import training

        return training.evaluation_request(
            SETTINGS,
            run_id=run_id,
            code_uri=code["code_uri"],
            model_uri=trained["Training"]["ModelArtifacts"]["S3ModelArtifacts"],
        )

    evaluation = build_evaluation_request(code, train_model.output)
    evaluate_model = ops.SageMakerProcessingOperator(
        task_id="evaluate_model",
        config=evaluation,
        output_files_to_xcom=[
            {
                "output_name": "evaluation",
                "file_name": "evaluation.json",
                "result_name": "evaluation",
            }
        ],
    )

    @task.branch(task_id="accuracy_gate")
    def accuracy_gate(evaluated: dict, params: dict) -> str:
        """Register only when test accuracy reaches `min_accuracy`."""
        from include.pipeline.tasks.training import metrics

        accuracy = metrics(evaluated["OutputFiles"]["evaluation"])["accuracy"]
        print(f"test accuracy {accuracy:.4f}, required {params['min_accuracy']}")
        return "build_registration" if accuracy >= params["min_accuracy"] else "skip_registration"

    @task(task_id="skip_registration")
    def skip_registration(evaluated: dict, params: dict) -> dict:
        from include.pipeline.tasks.training import metrics

        accuracy = metrics(evaluated["OutputFiles"]["evaluation"])["accuracy"]
        return {"skipped": f"test accuracy {accuracy:.4f} < min_accuracy {params['min_accuracy']}"}

    # ----------------------------------------------------------------- registry
    @task(task_id="build_registration", multiple_outputs=True)
    def build_registration(
        ingested: dict, trained: dict, evaluated: dict, params: dict, run_id=None, ti=None
    ) -> dict:
        from include.pipeline.tasks import registration

        return registration.kwargs(
            SETTINGS,
            params,
            run_id=run_id,
            ingested=ingested,
            trained=trained,
            evaluation_uri=registration.evaluation_uri(evaluated),
            bias=ti.xcom_pull(task_ids="bias_gate", key="bias"),
        )

    registration = build_registration(ingested, train_model.output, evaluate_model.output)
    register_model_version = ops.SageMakerRegisterModelVersionOperator(
        task_id="register_model_version",
        image_uri=registration["image_uri"],
        model_url=registration["model_url"],
        package_group_name=registration["package_group_name"],
        package_desc=registration["package_desc"],
        model_approval=registration["model_approval"],
        extras=registration["extras"],
    )

    @task.branch(task_id="is_approved")
    def is_approved(params: dict) -> str:
        """Deploy only approved versions; pending ones wait for a person (registry_cli)."""
        return (
            "build_deployment_requests"
            if params["model_approval"] == "Approved"
            else ("skip_deployment")
        )

    @task(task_id="skip_deployment")
    def skip_deployment(registered_arn: str) -> dict:
        return {
            "skipped": f"{registered_arn} awaits approval: python -m "
            f"include.pipeline.registry_cli approve {registered_arn}"
        }

    # ----------------------------------------------------------------- deployment
    @task(task_id="build_deployment_requests", multiple_outputs=True)
    def build_deployment_requests(trained: dict, params: dict, run_id=None) -> dict:
        from include.pipeline.tasks import deployment

        client = targets.client(SETTINGS, "sagemaker")
        return deployment.requests(
            SETTINGS,
            params,
            run_id=run_id,
            model_data_url=trained["Training"]["ModelArtifacts"]["S3ModelArtifacts"],
            champion_model=deployment.current_model(client, params["endpoint_name"]),
        )

    @task(task_id="create_rollback_alarm")
    def create_rollback_alarm(params: dict) -> str:
        from include.pipeline.requests import deployment

        return targets.put_metric_alarm(
            SETTINGS,
            deployment.rollback_alarm_request(
                endpoint_name=params["endpoint_name"],
                variant_name=deployment.PRIMARY_VARIANT,
                threshold_percent=5,
            ),
        )

    deploy = build_deployment_requests(train_model.output)
    create_model = ops.SageMakerModelOperator(task_id="create_model", config=deploy["model"])
    create_endpoint_config = ops.SageMakerEndpointConfigOperator(
        task_id="create_endpoint_config", config=deploy["endpoint_config"]
    )
    deploy_endpoint = ops.SageMakerEndpointOperator(
        task_id="deploy_endpoint", config=deploy["endpoint"], operation="create"
    )

    @task(task_id="smoke_test_endpoint")
    def smoke_test_endpoint(params: dict) -> list:
        from include.pipeline.tasks import deployment

        runtime = targets.client(SETTINGS, "sagemaker-runtime")
        return deployment.smoke_test(runtime, params["endpoint_name"])

    @teardown
    def delete_test_endpoint(params: dict) -> str | None:
        """With `delete_endpoint_after_run`, nothing is left running, whatever happened."""
        from include.pipeline.tasks import deployment

        if not params["delete_endpoint_after_run"]:
            return None
        return deployment.delete_endpoint(
            targets.client(SETTINGS, "sagemaker"), params["endpoint_name"]
        )

    @teardown
    def write_run_summary(params: dict, ti=None, dag_run=None) -> str:
        """Always runs (teardown), so a failed run still says how far it got."""
        from include.pipeline.tasks.summary import write_from_task

        return write_from_task(SETTINGS, ti=ti, dag_run=dag_run, params=params)

    gate = bias_gate(bias_request)
    chain(ingested, create_glue_database, create_glue_table, register_partition, queries)
    chain(queries, bias_request, detect_bias, gate, [stop_on_bias(), code])
    chain(code, feature_group, create_feature_group, wait_for_feature_group, prepare_features)
    chain(prepare_features, balanced_bias_request, detect_balanced_bias)
    chain(prepare_features, training_set_queries, query_training_set, training_request)
    chain(prepare_features, training_request, train_model, wait_for_debugger_rules)
    chain(wait_for_debugger_rules, evaluation, evaluate_model)
    chain(
        evaluate_model,
        accuracy_gate(evaluate_model.output),
        [skip_registration(evaluate_model.output), registration],
    )
    chain(detect_balanced_bias, registration, register_model_version)
    chain(
        register_model_version,
        is_approved(),
        [skip_deployment(register_model_version.output), deploy],
    )
    chain(deploy, create_rollback_alarm(), create_model, create_endpoint_config, deploy_endpoint)
    chain(deploy_endpoint, smoke_test_endpoint(), delete_test_endpoint())

    # The summary comes last, after every path (success, gate stops, skips, failures).
    summary = write_run_summary().operator
    for other in dag.tasks:
        if other is not summary:
            other >> summary
