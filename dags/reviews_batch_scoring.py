"""
### Reviews batch scoring: a file of new reviews through a SageMaker batch transform job

Triggered by hand (the **Trigger** button, whose form holds the Params below); no schedule.

0. **check_configuration**: the form's limits checked again (a REST client may skip the form),
   and `input_uri` given and in a place the deployment allows, before anything is read.
1. **prepare_input**: `input_uri` is an `s3://` prefix or file of JSON lines
   (`{"features": ["review text"]}` per line), scored where it is, or a CSV whose text column
   (`text_column`) becomes JSON lines in `s3://<bucket>/runs/<run key>/batch-scoring/input/`.
2. **resolve_model**: the model package version to use, `model_package_arn` or the newest
   **Approved** version of the `reviews-sentiment` model package group (Model Registry).
3. **build_transform_requests**: CreateModel with the package's image and `model.tar.gz`, and
   CreateTransformJob (JSON lines, `SplitType=Line`, `MultiRecord`, `AssembleWith=Line`).
4. **create_model** and **score_reviews**: the model and the batch transform job; each input
   file `F` is answered by `.../batch-scoring/output/F.out`, line *i* answering line *i*
   (`{"predicted_label": -1|0|1, "probability": p}`).
5. **summarize_scores**: predictions per label, checked against the input record count, in
   `s3://<bucket>/runs/<run key>/batch-scoring/summary.json`.

Same requests and task ids on both targets: the Amazon provider's operators on `aws`, the local
endpoint service and transform engine on `local`.
"""

from __future__ import annotations

from airflow.sdk import chain, task

from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from include.pipeline.dag_defaults import reviews_dag
from include.pipeline.params import BATCH_SCORING

SETTINGS = pipeline_settings.load()
ops = targets.operators(SETTINGS)

with reviews_dag(
    "reviews_batch_scoring",
    SETTINGS,
    schedule=None,
    description="A file of new reviews -> batch transform with an approved model -> label counts",
    doc_md=__doc__,
    params=BATCH_SCORING,
    tags=["sagemaker", "batch-transform"],
) as dag:

    @task(task_id="check_configuration")
    def check_configuration(params: dict) -> None:
        """Refuse a run whose parameters the form would not take, or whose input is missing or
        not allowed, before anything is read or a model is looked up; every problem at once."""
        from include.pipeline import run_inputs
        from include.pipeline.tasks import batch_scoring

        problems = batch_scoring.configuration_problems(SETTINGS, params)
        run_inputs.refuse(problems, "reviews_batch_scoring run")

    @task(task_id="prepare_input")
    def prepare_input(params: dict, run_id=None) -> dict:
        """JSON lines in S3 for the transform job (CSV and local files converted/copied)."""
        from include.pipeline.tasks import batch_scoring

        prepared = batch_scoring.prepare_input(SETTINGS, params, run_id=run_id)
        print(f"scoring {prepared['input_uri']} (records: {prepared['records']})")
        return prepared

    @task(task_id="resolve_model")
    def resolve_model(params: dict) -> dict:
        """The given or the newest Approved model package version, from the Model Registry."""
        from include.pipeline.requests.registry import package_group_name
        from include.pipeline.tasks import batch_scoring
        from include.pipeline.tasks.registry import MODEL_NAME

        model = batch_scoring.resolve_model(
            batch_scoring.registry_client(SETTINGS),
            group=package_group_name(MODEL_NAME),
            model_package_arn=params["model_package_arn"],
        )
        print(f"model package {model['model_package_arn']}: {model['model_data_url']}")
        return model

    @task(task_id="build_transform_requests", multiple_outputs=True)
    def build_transform_requests(prepared: dict, model: dict, params: dict, run_id=None) -> dict:
        from include.pipeline.tasks import batch_scoring

        return batch_scoring.build_requests(
            SETTINGS, params, run_id=run_id, model=model, input_uri=prepared["input_uri"]
        )

    @task(task_id="summarize_scores")
    def summarize_scores(prepared: dict, model: dict, scored: dict, run_id=None) -> dict:
        from include.pipeline.tasks import batch_scoring

        summary = batch_scoring.summarize(
            SETTINGS, run_id=run_id, prepared=prepared, model=model, scored=scored
        )
        print(f"{summary['predictions']} predictions: {summary['label_counts']}")
        return summary

    prepared = prepare_input()
    model = resolve_model()
    chain(check_configuration(), [prepared, model])
    built = build_transform_requests(prepared, model)
    create_model = ops.SageMakerModelOperator(task_id="create_model", config=built["model"])
    score_reviews = ops.SageMakerTransformOperator(
        task_id="score_reviews", config=built["transform"]
    )
    summary = summarize_scores(prepared, model, score_reviews.output)

    chain(built, create_model, score_reviews, summary)
