"""
### Reviews pipeline: raw reviews to a deployed sentiment model

Takes the Women's E-Commerce Clothing Reviews (raw CSV) through the steps of the AWS
"Practical Data Science" course as one production pipeline:

1. **ingest** to the lake (raw copy by content hash, transform, quarantine) and register the
   partition in the **Glue catalog**; **Athena** statistics.
2. **Clarify** pre-training bias report and the **bias gate** (fail or warn).
3. **Prepare** (BERT tokenization processing job) into the **Feature Store**; bias report of
   the balanced data.
4. **Candidates** (the `candidates` Param): the fine-tune (a **tuning job**, then the final
   training with the best trial's hyperparameters; its **Debugger** rules, LossNotDecreasing,
   Overtraining and the profiler report, evaluated by the pipeline or by Debugger: `rules_mode`);
   **BlazingText** and **Autopilot** from the same splits (a text-preparation job).
5. **Evaluate** each on the same test split; the **leaderboard** picks the best by
   `leaderboard_metric`; **accuracy gate**; **Model Registry** versions (the best, then the
   others, pending).
6. **Deploy** an approved version (blue/green canary / linear / all at once, or shadow),
   **smoke test** it; optional teardown of the endpoint.

Every step builds one AWS request (`include/pipeline/requests/`). With `PIPELINE_TARGET=aws` the
Amazon provider's operators send it; with `local` (the default) the same request runs on embedded
engines. The run summary lands at `s3://<bucket>/runs/<run key>/summary.json` (`layout.run_key`).

Trigger it from the form (**Trigger DAG w/ config**): set `input_uri` to your file, or leave it
empty for the generated sample. Each new file in `s3://<bucket>/incoming/` starts a run of its own
(`reviews_arrival`, run id `arrival__<content hash>`, the file as `input_uri`). A `reviews_drift`
or `reviews_labeled` event (`model_monitor`, `human_review`) starts a retraining run when it is
about this DAG's `endpoint_name`; `check_trigger` skips the run when the events are about another
endpoint.
"""

from __future__ import annotations

from airflow.sdk import DAG, chain, task, teardown

from include.pipeline import arrival, targets
from include.pipeline import settings as pipeline_settings
from include.pipeline import task_ids as T
from include.pipeline.dag_defaults import DEFAULT_ARGS, START_DATE
from include.pipeline.documents import evaluation as evaluation_doc
from include.pipeline.hitl import ModelApprovalOperator
from include.pipeline.layout import RUN_KEY_TEMPLATE, TEMPLATE_MACROS, Layout, RunLayout
from include.pipeline.params import PARAMS
from include.pipeline.requests import automl as automl_requests
from include.pipeline.requests import catalog
from include.pipeline.requests.features import SPLITS
from include.pipeline.requests.registry import REGISTER_ARGUMENTS

SETTINGS = pipeline_settings.load()
ops = targets.operators(SETTINGS)
LAYOUT = Layout(SETTINGS)
RUN = RunLayout(SETTINGS, RUN_KEY_TEMPLATE)  # rendered per run (TEMPLATE_MACROS)

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
    user_defined_macros=TEMPLATE_MACROS,
) as dag:
    # ----------------------------------------------------------------- ingest, catalog, stats
    @task.short_circuit(task_id=T.CHECK_TRIGGER)
    def check_trigger(params: dict, triggering_asset_events=None) -> bool:
        """A run started by drift or labels about another endpoint skips everything (no
        failure); one about `endpoint_name`, the endpoint this DAG deploys, retrains it."""
        from include.pipeline import feedback

        events = feedback.retraining_events(SETTINGS, triggering_asset_events)
        go_on, why = feedback.retraining_decision(events, params["endpoint_name"])
        print(why)
        return go_on

    @task(task_id=T.CHECK_CONFIGURATION)
    def check_configuration(params: dict, dag_run=None) -> None:
        """Refuse a run that would fail only after paying for jobs (aws: a placeholder role, no
        bucket, no input); every problem in one message."""
        from airflow.sdk.exceptions import AirflowFailException

        run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
        problems = targets.load(SETTINGS).run_problems(
            params["input_uri"], scheduled=run_type == "scheduled"
        )
        if problems:
            raise AirflowFailException(
                f"not starting this {SETTINGS.target} run:\n- " + "\n- ".join(problems)
            )

    @task(task_id=T.INGEST)
    def ingest_reviews(params: dict, ti=None, run_id=None, dag_run=None) -> dict:
        """Raw copy by content hash, transform as the course does, quarantine bad rows. A run
        started by drift or labels re-ingests the serving model's data (registry lineage)."""
        from include.pipeline.tasks.ingest import ingest_task

        run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
        result = ingest_task(
            SETTINGS, params, run_id=run_id, retraining=run_type == "asset_triggered"
        )
        ti.xcom_push(key="raw_hash", value=result["raw_hash"])
        return result

    @task(task_id="build_partition_input")
    def build_partition_input(ingested: dict) -> dict:
        return catalog.partition_input(SETTINGS, ingested["raw_hash"])

    ingested = ingest_reviews()
    check_configuration() >> ingested
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
            task_id=T.query(name),
            query=f"{name}.sql",
            database=SETTINGS.glue_database,
            output_location=RUN.query_results(),
        )
        for name in catalog.QUERIES
    ]

    # ----------------------------------------------------------------- pre-training bias
    @task(task_id="publish_bias_configs", multiple_outputs=True)
    def publish_bias_configs(params: dict, run_id=None) -> dict:
        """Clarify's analysis_config.json of each stage (raw, balanced), from the Params."""
        from include.pipeline.tasks import bias

        return bias.publish_analysis_configs(SETTINGS, params, run_id=run_id)

    @task(task_id="build_bias_request")
    def build_bias_request(ingested: dict, config_uri: str, run_id=None) -> dict:
        from include.pipeline.tasks import bias

        dataset = LAYOUT.dataset_prefix(ingested["raw_hash"])
        return bias.build_request(
            SETTINGS, run_id=run_id, config_uri=config_uri, dataset_uri=dataset
        )

    bias_configs = publish_bias_configs()
    bias_request = build_bias_request(ingested, bias_configs["raw"])
    detect_bias = ops.SageMakerProcessingOperator(
        task_id="detect_pretraining_bias", config=bias_request
    )

    @task.branch(task_id=T.BIAS_GATE)
    def bias_gate(request: dict, params: dict, ti=None) -> str:
        """Thresholds from the Params; `fail` mode stops the run, `warn` continues."""
        from include.pipeline.tasks import bias

        verdict = bias.result(SETTINGS, request, params)
        ti.xcom_push(key=T.BIAS_VERDICT_KEY, value=verdict)
        if verdict["violations"] and params["bias_gate_mode"] == "fail":
            return T.STOP_ON_BIAS
        return T.PUBLISH_CODE

    @task(task_id=T.STOP_ON_BIAS)
    def stop_on_bias(ti=None) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from include.pipeline.tasks.bias import format_violations

        violations = ti.xcom_pull(task_ids=T.BIAS_GATE, key=T.BIAS_VERDICT_KEY)["violations"]
        raise AirflowFailException(
            f"bias gate failed: {len(violations)} violation(s)\n{format_violations(violations)}"
        )

    # ----------------------------------------------------------------- features
    @task(task_id=T.PUBLISH_CODE)
    def publish_code() -> dict:
        """The job scripts, content-addressed in S3 (loose files + sourcedir.tar.gz)."""
        from include.pipeline.tasks.code import publish

        return publish(SETTINGS)

    @task(task_id="build_feature_group_request", multiple_outputs=True)
    def build_feature_group_request(params: dict) -> dict:
        from include.pipeline.tasks import features

        return features.build_feature_group_request(SETTINGS, params)

    @task(task_id="build_prepare_request")
    def build_prepare_request(
        ingested: dict, code: dict, labels: dict, params: dict, dag_run=None
    ) -> dict:
        from include.pipeline.tasks import features, retraining

        request = features.prepare_request(
            SETTINGS,
            params,
            run_id=dag_run.run_id,
            event_time=features.event_time(dag_run.run_after),
            dataset_uri=LAYOUT.dataset_prefix(ingested["raw_hash"]),
            code_uri=code["code_uri"],
        )
        return retraining.with_labels(request, labels["uri"])

    @task(task_id="export_labels")
    def export_labels(ingested: dict, params: dict, run_id=None) -> dict:
        """The endpoint's human labels, in the prepared shape, join the base data."""
        from include.pipeline.tasks import retraining

        return retraining.export_labels(
            SETTINGS, params, run_id=run_id, raw_hash=ingested["raw_hash"]
        )

    code = publish_code()
    feature_group = build_feature_group_request()
    create_feature_group = ops.SageMakerCreateFeatureGroupOperator(
        task_id=T.CREATE_FEATURE_GROUP, config=feature_group
    )
    wait_for_feature_group = ops.SageMakerFeatureGroupSensor(
        task_id="wait_for_feature_group", feature_group_name=feature_group["FeatureGroupName"]
    )
    prepare_features = ops.SageMakerProcessingOperator(
        task_id=T.PREPARE_FEATURES,
        config=build_prepare_request(ingested, code, export_labels(ingested)),
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

    @task(task_id="build_offline_count_query")
    def build_offline_count_query(feature_group: dict, dag_run=None) -> str:
        """Counts this run's records in the offline store, which PutRecord reaches late."""
        from include.pipeline.tasks import features

        return features.offline_count_query(
            feature_group["FeatureGroup"], features.event_time(dag_run.run_after)
        )

    wait_for_offline_store = ops.SageMakerOfflineStoreSensor(
        task_id="wait_for_offline_store",
        query=build_offline_count_query(create_feature_group.output),
        expected=f"{{{{ ti.xcom_pull(task_ids='{T.PREPARE_FEATURES}')"
        "['OutputFiles']['prepare']['records_ingested'] }}",
        output_location=RUN.query_results(),
    )
    query_training_set = [
        ops.AthenaOperator(
            task_id=T.training_set_query(split),
            query=training_set_queries[split],
            database="sagemaker_featurestore",
            output_location=RUN.training_set(split),
        )
        for split in SPLITS
    ]

    @task(task_id=T.BUILD_BALANCED_BIAS_REQUEST)
    def build_balanced_bias_request(config_uri: str, run_id=None) -> dict:
        """The same bias analysis over the balanced training split (before vs after)."""
        from include.pipeline.tasks import bias

        return bias.build_request(
            SETTINGS,
            run_id=run_id,
            config_uri=config_uri,
            dataset_uri=RunLayout(SETTINGS, run_id).balanced(),
            stage="balanced",
        )

    balanced_bias_request = build_balanced_bias_request(bias_configs["balanced"])
    detect_balanced_bias = ops.SageMakerProcessingOperator(
        task_id=T.DETECT_BALANCED_BIAS, config=balanced_bias_request
    )

    @task(task_id=T.LOCATE_TRAINING_SET)
    def locate_training_set(query_ids: dict, run_id=None) -> dict:
        """Each split's channel is its query's own result object (a retried query's)."""
        from include.pipeline.tasks import training

        return training.training_set_files(SETTINGS, run_id, query_ids)

    training_set = locate_training_set(
        {split: query.output for split, query in zip(SPLITS, query_training_set, strict=True)}
    )

    # ----------------------------------------------------------------- candidates: fine-tune
    # Each candidate's first task skips its path when the `candidates` Param leaves it out.
    @task(task_id="build_tuning_request")
    def build_tuning_request(code: dict, training_set: dict, params: dict, run_id=None) -> dict:
        """Trials of the fine-tune on a subset, over learning rate and batch size."""
        from include.pipeline.tasks import candidates

        return candidates.tuning_request(
            SETTINGS, params, run_id=run_id, code=code, training_set=training_set
        )

    tune_finetune = ops.SageMakerTuningOperator(
        task_id=T.TUNE, config=build_tuning_request(code, training_set)
    )

    # Runs when tuning was skipped (turned off); skipped with its inputs (a bias stop).
    @task(task_id="build_training_request", trigger_rule="none_failed_min_one_success")
    def build_training_request(
        code: dict, training_set: dict, params: dict, run_id=None, ti=None
    ) -> dict:
        """The final fine-tune, with the best trial's hyperparameters when tuning ran."""
        from include.pipeline.tasks import candidates

        return candidates.final_training_request(
            SETTINGS,
            params,
            run_id=run_id,
            code=code,
            training_set=training_set,
            tuned=ti.xcom_pull(task_ids=T.TUNE),
        )

    training_request = build_training_request(code, training_set)
    train_model = ops.SageMakerTrainingOperator(task_id=T.TRAIN, config=training_request)
    wait_for_debugger_rules = ops.SageMakerDebugRulesSensor(
        task_id=T.WAIT_FOR_DEBUGGER_RULES,
        job_name=f"{{{{ ti.xcom_pull(task_ids='{T.TRAIN}')['Training']['TrainingJobName'] }}}}",
        fail_on_issues="{{ params.rules_fail_on_issues }}",
    )  # rules_mode managed: Debugger's rule jobs; pipeline: the job has none, it passes at once

    @task(task_id=T.CHECK_TRAINING_RULES)
    def check_training_rules(trained: dict, params: dict) -> dict:
        """rules_mode pipeline: the project evaluates the rules on the job's training history."""
        from include.pipeline.tasks import training

        return training.check_rules(SETTINGS, params, trained)

    training_rules = check_training_rules(train_model.output)

    # ----------------------------------------------------------------- candidates: text models
    @task(task_id="build_text_preparation_request")
    def build_text_preparation_request(
        code: dict, training_set: dict, params: dict, run_id=None
    ) -> dict:
        """The same splits as BlazingText's label lines and Autopilot's CSV."""
        from include.pipeline.tasks import candidates

        return candidates.prepare_text_request(
            SETTINGS, params, run_id=run_id, code_uri=code["code_uri"], training_set=training_set
        )

    prepare_text = ops.SageMakerProcessingOperator(
        task_id=T.PREPARE_TEXT, config=build_text_preparation_request(code, training_set)
    )

    @task(task_id="build_blazingtext_request")
    def build_blazingtext_request(params: dict, run_id=None) -> dict:
        from include.pipeline.tasks import candidates

        return candidates.blazingtext_request(SETTINGS, params, run_id=run_id)

    blazingtext_request = build_blazingtext_request()
    train_blazingtext = ops.SageMakerTrainingOperator(
        task_id=T.TRAIN_BLAZINGTEXT, config=blazingtext_request
    )

    @task(task_id="build_automl_arguments", multiple_outputs=True)
    def build_automl_arguments(params: dict, run_id=None) -> dict:
        from include.pipeline.tasks import candidates

        return candidates.automl_arguments(SETTINGS, params, run_id=run_id)

    automl_arguments = build_automl_arguments()
    create_automl_job = ops.SageMakerAutoMLOperator(
        task_id=T.CREATE_AUTOML_JOB,
        **{name: automl_arguments[name] for name in automl_requests.OPERATOR_ARGUMENTS},
        wait_for_completion=False,
    )
    wait_for_automl_job = ops.SageMakerAutoMLSensor(
        task_id=T.WAIT_FOR_AUTOML_JOB, job_name=automl_arguments["job_name"]
    )

    @task(task_id=T.DESCRIBE_AUTOML_JOB)
    def describe_automl_job(job_name: str) -> dict:
        from include.pipeline.tasks import candidates

        return candidates.describe_automl_job(targets.client(SETTINGS, "sagemaker"), job_name)

    described_automl_job = describe_automl_job(automl_arguments["job_name"])

    @task(task_id="build_autopilot_scoring_requests", multiple_outputs=True)
    def build_autopilot_scoring_requests(trained: dict, params: dict, run_id=None) -> dict:
        """aws: the best candidate's model and the batch transform of the test split with it
        (the evaluation job cannot run Autopilot's containers); skipped locally."""
        from include.pipeline.tasks import candidates

        return candidates.autopilot_scoring_requests(
            SETTINGS, params, run_id=run_id, trained=trained
        )

    autopilot_scoring = build_autopilot_scoring_requests(described_automl_job)
    create_autopilot_model = ops.SageMakerModelOperator(
        task_id="create_autopilot_model", config=autopilot_scoring["model"]
    )
    score_autopilot_test_split = ops.SageMakerTransformOperator(
        task_id="score_autopilot_test_split", config=autopilot_scoring["transform"]
    )
    chain(create_autopilot_model, score_autopilot_test_split)

    # ----------------------------------------------------------------- evaluation and gate
    # One evaluation job per candidate, on the fine-tune's test split, one evaluation.json shape.
    trained_models = {
        "finetune": train_model.output,
        "blazingtext": train_blazingtext.output,
        "autopilot": described_automl_job,
    }
    evaluation_requests, evaluations, posttraining_biases = {}, {}, {}
    for candidate, trained_model in trained_models.items():
        # Autopilot's batch scoring is skipped where its model is loaded instead; all upstream
        # skipped (the bias gate stopped the run) skips this too.
        @task(task_id=T.build_evaluation(candidate), trigger_rule="none_failed_min_one_success")
        def build_evaluation_request(
            code: dict,
            trained: dict,
            training_set: dict,
            params: dict,
            run_id=None,
            candidate: str = candidate,
        ) -> dict:
            from include.pipeline.tasks import candidates

            return candidates.evaluation_request(
                SETTINGS,
                params,
                run_id=run_id,
                candidate=candidate,
                code_uri=code["code_uri"],
                trained=trained,
                test_uri=training_set["test"],
            )

        evaluation_requests[candidate] = build_evaluation_request(code, trained_model, training_set)
        evaluations[candidate] = ops.SageMakerProcessingOperator(
            task_id=T.evaluate(candidate),
            config=evaluation_requests[candidate],
            output_files_to_xcom=evaluation_doc.XCOM_FILES,
        )

        @task(task_id=f"build_posttraining_bias_request_{candidate}")
        def build_posttraining_bias_request(
            params: dict, run_id=None, candidate: str = candidate
        ) -> dict:
            """Clarify's post-training bias (product_category) of the candidate's predictions."""
            from include.pipeline.tasks import candidates

            return candidates.posttraining_bias_request(
                SETTINGS, params, targets.load(SETTINGS).storage, run_id=run_id, candidate=candidate
            )

        bias_request_of_candidate = build_posttraining_bias_request()
        posttraining_biases[candidate] = ops.SageMakerProcessingOperator(
            task_id=T.posttraining_bias(candidate), config=bias_request_of_candidate
        )
        chain(evaluations[candidate], bias_request_of_candidate, posttraining_biases[candidate])
    evaluation, evaluate_model = evaluation_requests["finetune"], evaluations["finetune"]

    @task(task_id=T.RANK_CANDIDATES, trigger_rule="none_failed_min_one_success")
    def rank_candidates(params: dict, run_id=None, ti=None) -> dict:
        """The leaderboard: every evaluated candidate, best by `leaderboard_metric` first."""
        from include.pipeline.tasks import candidates

        results = {
            name: tuple(
                ti.xcom_pull(task_ids=task_id)
                for task_id in (T.TRAINED[name], T.evaluate(name), T.posttraining_bias(name))
            )
            for name in T.TRAINED
        }
        return candidates.leaderboard(
            SETTINGS, params, targets.load(SETTINGS).storage, run_id=run_id, results=results
        )

    leaderboard = rank_candidates()

    @task.short_circuit(task_id="build_champion_evaluation", ignore_downstream_trigger_rules=False)
    def build_champion_evaluation(
        code: dict, training_set: dict, params: dict, run_id=None
    ) -> dict | None:
        """The serving model on this run's test split; no endpoint yet: no champion."""
        from include.pipeline.tasks import retraining

        return retraining.champion_evaluation_request(
            SETTINGS,
            targets.client(SETTINGS, "sagemaker"),
            params,
            run_id=run_id,
            code_uri=code["code_uri"],
            test_uri=training_set["test"],
        )

    champion_evaluation = build_champion_evaluation(code, training_set)
    evaluate_champion = ops.SageMakerProcessingOperator(
        task_id="evaluate_champion",
        config=champion_evaluation,
        output_files_to_xcom=evaluation_doc.XCOM_FILES,
    )

    # Runs without a champion (its evaluation skipped); skipped with the leaderboard.
    @task.branch(task_id="accuracy_gate", trigger_rule="none_failed_min_one_success")
    def accuracy_gate(board: dict, params: dict, ti=None) -> str:
        """The best candidate registers only at `min_accuracy` or more and above the serving
        model (champion)."""
        from include.pipeline.tasks import retraining

        evaluated = ti.xcom_pull(task_ids=T.evaluate(board["best"]))
        passed, why = retraining.gate(evaluated, ti.xcom_pull(task_ids="evaluate_champion"), params)
        print(f"{board['best']}: {why}")
        return T.BUILD_REGISTRATION if passed else T.SKIP_REGISTRATION

    @task(task_id=T.SKIP_REGISTRATION)
    def skip_registration(board: dict, params: dict, ti=None) -> dict:
        from include.pipeline.tasks import retraining

        evaluated = ti.xcom_pull(task_ids=T.evaluate(board["best"]))
        _, why = retraining.gate(evaluated, ti.xcom_pull(task_ids="evaluate_champion"), params)
        return {"skipped": why}

    # ----------------------------------------------------------------- registry
    @task(task_id=T.BUILD_REGISTRATION, multiple_outputs=True)
    def build_registration(ingested: dict, board: dict, params: dict, run_id=None, ti=None) -> dict:
        """The leaderboard's best, with its metrics and lineage."""
        from include.pipeline.tasks import candidates, registry

        best = candidates.best(board)
        return registry.registration_arguments(
            SETTINGS,
            params,
            run_id=run_id,
            ingested=ingested,
            model=best,
            evaluation_uri=best["evaluation_uri"],
            bias=ti.xcom_pull(task_ids=T.BIAS_GATE, key=T.BIAS_VERDICT_KEY),
        )

    @task(task_id="build_runner_up_registrations")
    def build_runner_up_registrations(
        ingested: dict, board: dict, params: dict, run_id=None, ti=None
    ) -> list[dict]:
        """Every other candidate, registered pending (not deployed) with its own metrics."""
        from include.pipeline.tasks import candidates

        return candidates.runners_up(
            SETTINGS,
            params,
            run_id=run_id,
            leaderboard_doc=board,
            ingested=ingested,
            bias=ti.xcom_pull(task_ids=T.BIAS_GATE, key=T.BIAS_VERDICT_KEY),
        )

    registration = build_registration(ingested, leaderboard)
    register_model_version = ops.SageMakerRegisterModelVersionOperator(
        task_id=T.REGISTER,
        **{name: registration[name] for name in REGISTER_ARGUMENTS},
    )
    register_runners_up = targets.mapped(
        ops.SageMakerRegisterModelVersionOperator, task_id=T.REGISTER_RUNNERS_UP
    ).expand_kwargs(build_runner_up_registrations(ingested, leaderboard))

    # The approval gate: a pending version waits for a person's Approve / Reject in Airflow's
    # UI (which sets its registry status); one registered Approved goes straight on.
    approve_model = ModelApprovalOperator(
        task_id=T.APPROVE_MODEL,
        subject=f"Deploy model version {{{{ ti.xcom_pull(task_ids='{T.REGISTER}') }}}}?",
        body="Test accuracy, bias verdict and lineage are on the run's reports page "
        "(menu: Reviews pipeline). Approve deploys it to `{{ params.endpoint_name }}`.",
        model_package_arn=f"{{{{ ti.xcom_pull(task_ids='{T.REGISTER}') }}}}",
        deploy_task_id=T.BUILD_DEPLOYMENT_REQUESTS,
        reject_task_id=T.SKIP_DEPLOYMENT,
    )

    @task(task_id=T.SKIP_DEPLOYMENT)
    def skip_deployment(registered_arn: str) -> dict:
        return {"skipped": f"{registered_arn} was rejected in Airflow: not deployed"}

    # ----------------------------------------------------------------- deployment
    @task(task_id=T.BUILD_DEPLOYMENT_REQUESTS, multiple_outputs=True)
    def build_deployment_requests(board: dict, params: dict, run_id=None) -> dict:
        """The leaderboard's best, in its own serving container."""
        from include.pipeline.tasks import candidates, deployment

        client = targets.client(SETTINGS, "sagemaker")
        best = candidates.best(board)
        return deployment.build_deployment_requests(
            SETTINGS,
            params,
            run_id=run_id,
            model_data_url=best["model_uri"],
            champion_model=deployment.current_model(client, params["endpoint_name"]),
            candidate=best,
        )

    @task(task_id="create_rollback_alarm")
    def create_rollback_alarm(params: dict) -> str:
        from include.pipeline.requests import deployment

        request = deployment.rollback_alarm_request(
            endpoint_name=params["endpoint_name"],
            variant_name=deployment.PRIMARY_VARIANT,
            threshold_percent=params["rollback_error_rate_percent"],
        )
        targets.client(SETTINGS, "cloudwatch").put_metric_alarm(**request)
        return request["AlarmName"]

    deploy = build_deployment_requests(leaderboard)
    create_model = ops.SageMakerModelOperator(task_id="create_model", config=deploy["model"])
    create_endpoint_config = ops.SageMakerEndpointConfigOperator(
        task_id="create_endpoint_config", config=deploy["endpoint_config"]
    )
    deploy_endpoint = ops.SageMakerEndpointOperator(
        task_id=T.DEPLOY, config=deploy["endpoint"], operation="create"
    )

    @task(task_id="build_monitoring_baseline_request")
    def build_monitoring_baseline_request(
        code: dict, board: dict, model: dict, training_set: dict, params: dict, run_id=None
    ) -> dict:
        """The served model's data-quality baseline (model_monitor compares traffic to it)."""
        from include.pipeline.tasks import candidates

        best = candidates.best(board)
        candidates.require_finetune_served(best)
        from include.pipeline.tasks import monitoring

        return monitoring.baseline_request(
            SETTINGS,
            run_id=run_id,
            endpoint_name=params["endpoint_name"],
            model_name=model["ModelName"],
            model_uri=best["model_uri"],
            code_uri=code["code_uri"],
            dataset_uri=training_set["train"],
        )

    monitoring_baseline = ops.SageMakerProcessingOperator(
        task_id="monitoring_baseline",
        config=build_monitoring_baseline_request(code, leaderboard, deploy["model"], training_set),
    )

    @task(task_id=T.SMOKE_TEST)
    def smoke_test_endpoint(board: dict, params: dict, run_id=None, dag_run=None) -> list:
        """Two reviews of known sentiment; their labels are stored as the request's ground truth."""
        from include.pipeline.tasks import deployment

        runtime = targets.client(SETTINGS, "sagemaker-runtime")
        inference_id = deployment.smoke_inference_id(run_id)
        answer = deployment.smoke_test(
            runtime, params["endpoint_name"], inference_id=inference_id, candidate=board["best"]
        )
        deployment.record_smoke_ground_truth(
            SETTINGS, params["endpoint_name"], inference_id=inference_id, time=dag_run.run_after
        )
        return answer

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
    chain(prepare_features, wait_for_offline_store, query_training_set, training_request)
    chain(training_set_queries, query_training_set)
    chain(training_set, tune_finetune, training_request)
    chain(prepare_features, training_request, train_model, wait_for_debugger_rules)
    chain(wait_for_debugger_rules, training_rules, evaluation, evaluate_model)
    chain(prepare_text, blazingtext_request, train_blazingtext, evaluation_requests["blazingtext"])
    chain(prepare_text, automl_arguments, create_automl_job, wait_for_automl_job)
    chain(wait_for_automl_job, described_automl_job, evaluation_requests["autopilot"])
    chain(score_autopilot_test_split, evaluation_requests["autopilot"])
    chain(list(posttraining_biases.values()), leaderboard)
    chain(query_training_set, champion_evaluation, evaluate_champion)
    gate_on_accuracy = accuracy_gate(leaderboard)
    chain(
        [leaderboard, evaluate_champion],
        gate_on_accuracy,
        [skip_registration(leaderboard), registration],
    )
    chain(detect_balanced_bias, registration, register_model_version, register_runners_up)
    chain(
        register_model_version,
        approve_model,
        [skip_deployment(register_model_version.output), deploy],
    )
    chain(deploy, create_rollback_alarm(), create_model, create_endpoint_config, deploy_endpoint)
    chain(deploy_endpoint, smoke_test_endpoint(leaderboard), delete_test_endpoint())
    chain(deploy_endpoint, monitoring_baseline)

    # check_trigger comes first: every other task (but the teardowns) is downstream of it.
    trigger = check_trigger().operator
    for root in dag.roots:
        if root is not trigger:
            trigger >> root
    # The summary comes last, after every path (success, gate stops, skips, failures).
    summary = write_run_summary().operator
    for other in dag.tasks:
        if other is not summary:
            other >> summary
