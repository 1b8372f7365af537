"""
### Reviews pipeline: raw reviews to a deployed sentiment model

Takes the Women's E-Commerce Clothing Reviews (raw CSV) through the steps of the AWS
"Practical Data Science" course as one production pipeline:

1. **ingest** to the lake (raw copy by content hash, transform, quarantine); the file joins the
   reviews already ingested and the run trains on all of them (`training_data`); register the
   partition in the **Glue catalog**; **Athena** statistics.
2. **Clarify** pre-training bias report and the **bias gate** (fail or warn).
3. **Prepare** (BERT tokenization processing job) into the **Feature Store**; bias report of
   the balanced data.
4. **Candidates** (the `candidates` Param): the fine-tune (a **tuning job** and the recipe at
   the trials' budget, then the final training with the best trial's hyperparameters when they
   beat the recipe on validation; its **Debugger** rules, LossNotDecreasing, Overtraining and
   the profiler report, evaluated by the pipeline or by Debugger: `rules_mode`);
   **BlazingText** and **Autopilot** from the same splits (a text-preparation job).
5. **Evaluate** each on the same test split; the **leaderboard** picks the best by
   `leaderboard_metric`; **accuracy gate**; **Model Registry** versions (the best, then the
   others, pending).
6. **Deploy** an approved version (blue/green canary / linear / all at once, or shadow),
   **smoke test** it; optional teardown of the endpoint. Once the endpoint serves it,
   `deploy_endpoint` emits the `reviews_deployed` asset event (endpoint, variant, model,
   registry version, candidate kind, run), which starts `model_monitor` (a fresh window and the
   new model's baseline), `human_review` and `endpoint_rollout`.

Each stage is one box of the graph, a task group of `include/pipeline/stages/`; this file calls
them in order and draws the edges between them. Every step builds one AWS request
(`include/pipeline/requests/`). With `PIPELINE_TARGET=aws` the Amazon provider's operators send
it; with `local` (the default) the same request runs on embedded engines. The run summary lands at `s3://<bucket>/runs/<run key>/summary.json` (`layout.run_key`).

Trigger it from the form (the **Trigger** button, then **Trigger** in the dialog): the Input
section holds the file (`input_uri`: an `s3://` URI in the pipeline's bucket or a file in the
lake's `incoming/` folder; empty for the generated sample), the other sections are collapsed
with their defaults. `check_configuration` refuses an input or a pretrained model the deployment
does not allow (settings `PIPELINE_INPUT_ROOTS`, `PIPELINE_INPUT_BUCKETS`,
`PIPELINE_MODEL_ROOTS`) before anything is read. Each new file in `s3://<bucket>/incoming/`
starts a run of its own (`reviews_arrival`, run id `arrival__<content hash>`, the file as
`input_uri`). A `reviews_drift` or `reviews_labeled` event (`model_monitor`, `human_review`)
starts a retraining run when it is about this DAG's `endpoint_name`; `check_trigger` skips the
run when the events are about another endpoint.
"""

from __future__ import annotations

from airflow.sdk import DAG, chain

from include.pipeline import arrival, notify, targets
from include.pipeline import settings as pipeline_settings
from include.pipeline.dag_defaults import DEFAULT_ARGS, START_DATE
from include.pipeline.layout import TEMPLATE_MACROS
from include.pipeline.params import PARAMS
from include.pipeline.stages.bias import bias
from include.pipeline.stages.candidates import candidates
from include.pipeline.stages.deploy import deploy
from include.pipeline.stages.evaluate_and_select import evaluate_and_select
from include.pipeline.stages.features import features
from include.pipeline.stages.ingest_and_catalog import ingest_and_catalog
from include.pipeline.stages.register_and_approve import register_and_approve
from include.pipeline.stages.summary import summary

SETTINGS = pipeline_settings.load()
ops = targets.operators(SETTINGS)

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
    on_failure_callback=notify.run_failed(SETTINGS),
) as dag:
    # The stages in the diagram's order; each takes the upstream results it reads.
    ingest = ingest_and_catalog(SETTINGS, ops)
    pretraining = bias(SETTINGS, ops, ingest.ingested)
    feats = features(SETTINGS, ops, ingest.ingested, pretraining.configs)
    trained = candidates(SETTINGS, ops, feats.code, feats.training_set)
    chosen = evaluate_and_select(SETTINGS, ops, feats.code, feats.training_set, trained.trained)
    registered = register_and_approve(SETTINGS, ops, ingest.ingested, chosen.leaderboard)
    deployed = deploy(SETTINGS, ops, chosen.leaderboard, ingest.ingested, feats.training_set)
    ended = summary(SETTINGS)

    # The edges between stages that no result carries.
    chain(ingest.checked, pretraining.configs)  # the configs hold Params: written once checked
    chain(ingest.queries, pretraining.request)
    chain(pretraining.gate, feats.code)  # the bias gate's branch on
    chain(feats.training_set, trained.tuners)
    chain([feats.prepared, *feats.query_training_set], trained.training_request)
    for name, model in trained.trained.items():
        chain(model.last, chosen.evaluation_requests[name])
    chain(feats.query_training_set, chosen.champion_evaluation)
    chain([chosen.gate, feats.detect_balanced_bias], registered.registration)
    chain(registered.approval, deployed.requests)  # the approval gate's branch on
    chain([deployed.smoke_test, deployed.autoscaling], ended.deleted_endpoint)

    # check_trigger comes first: every other task (but the teardowns) is downstream of it.
    for root in dag.roots:
        if root not in (ingest.trigger, ended.summary):
            ingest.trigger >> root
    # The summary comes last, after every path (success, gate stops, skips, failures).
    for other in dag.tasks:
        if other is not ended.summary:
            other >> ended.summary
