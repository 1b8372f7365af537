"""The features box: the job scripts published, the BERT tokenization job into the Feature
Store, the training set queried back from the offline store, and the bias report of the
balanced data."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk import BaseOperator, XComArg, chain, task

from include.pipeline import task_ids as T
from include.pipeline.layout import RUN_KEY_TEMPLATE, Layout, RunLayout
from include.pipeline.requests.features import SPLITS
from include.pipeline.settings import Settings
from include.pipeline.stages import stage

if TYPE_CHECKING:
    from include.pipeline.tasks.summary import SummaryContext


class Features(NamedTuple):
    code: XComArg  # publish_code: the job scripts' URIs
    prepared: BaseOperator  # prepare_features
    query_training_set: list[BaseOperator]  # one Athena query per split
    training_set: XComArg  # locate_training_set: each split's channel
    detect_balanced_bias: BaseOperator


@stage(
    "features",
    "Features",
    "Feature Store, training-set queries, the balanced data's bias report",
)
def features(
    settings: Settings, ops: SimpleNamespace, ingested: XComArg, bias_configs: XComArg
) -> Features:
    """Every candidate trains on the splits this stage queries back from the offline store."""
    layout = Layout(settings)
    run = RunLayout(settings, RUN_KEY_TEMPLATE)  # rendered per run (TEMPLATE_MACROS)

    @task(task_id=T.PUBLISH_CODE)
    def publish_code() -> dict:
        """The job scripts, content-addressed in S3 (loose files + sourcedir.tar.gz)."""
        from include.pipeline.tasks.code import publish

        return publish(settings)

    @task(task_id="build_feature_group_request", multiple_outputs=True)
    def build_feature_group_request(params: dict) -> dict:
        from include.pipeline.tasks import features

        return features.build_feature_group_request(settings, params)

    @task(task_id="build_prepare_request")
    def build_prepare_request(
        ingested: dict, code: dict, labels: dict, params: dict, dag_run=None
    ) -> dict:
        from include.pipeline.tasks import features, retraining

        request = features.prepare_request(
            settings,
            params,
            run_id=dag_run.run_id,
            event_time=features.event_time(dag_run.run_after),
            dataset_uri=layout.dataset_prefix(ingested["raw_hash"]),
            code_uri=code["code_uri"],
        )
        return retraining.with_labels(request, labels["uri"])

    @task(task_id="export_labels")
    def export_labels(ingested: dict, params: dict, run_id=None) -> dict:
        """The endpoint's human labels, in the prepared shape, join the base data."""
        from include.pipeline.tasks import retraining

        return retraining.export_labels(
            settings, params, run_id=run_id, raw_hash=ingested["raw_hash"]
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
        output_location=run.query_results(),
    )
    query_training_set = [
        ops.AthenaOperator(
            task_id=T.training_set_query(split),
            query=training_set_queries[split],
            database="sagemaker_featurestore",
            output_location=run.training_set(split),
        )
        for split in SPLITS
    ]

    @task(task_id=T.BUILD_BALANCED_BIAS_REQUEST)
    def build_balanced_bias_request(config_uri: str, run_id=None) -> dict:
        """The same bias analysis over the balanced training split (before vs after)."""
        from include.pipeline.tasks import bias

        return bias.build_request(
            settings,
            run_id=run_id,
            config_uri=config_uri,
            dataset_uri=RunLayout(settings, run_id).balanced(),
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

        return training.training_set_files(settings, run_id, query_ids)

    training_set = locate_training_set(
        {split: query.output for split, query in zip(SPLITS, query_training_set, strict=True)}
    )

    chain(code, feature_group, create_feature_group, wait_for_feature_group, prepare_features)
    chain(prepare_features, balanced_bias_request, detect_balanced_bias)
    chain(prepare_features, wait_for_offline_store, query_training_set)
    chain(training_set_queries, query_training_set)
    return Features(
        code=code,
        prepared=prepare_features,
        query_training_set=query_training_set,
        training_set=training_set,
        detect_balanced_bias=detect_balanced_bias,
    )


def summarize(ctx: SummaryContext) -> dict[str, Any]:
    """The summary's ``features``: the split files, the feature group and its offline store, and
    the training set queried back from it."""
    feature_group = (ctx.pull(T.CREATE_FEATURE_GROUP) or {}).get("FeatureGroup")
    prepared = ctx.pull(T.PREPARE_FEATURES)
    if not (feature_group and prepared):
        return {}
    store = feature_group["OfflineStoreConfig"]["S3StorageConfig"]
    splits = prepared.get("OutputFiles", {}).get("prepare", {}).get("splits", {})
    training_set = {split: ctx.pull(T.training_set_query(split)) for split in SPLITS}
    return {
        "features": {
            **{split: splits.get(split) for split in SPLITS},
            "feature_group": feature_group["FeatureGroupName"],
            "offline_store_uri": _first(store.get("ResolvedOutputS3Uri"), store.get("S3Uri")),
            "training_set": {
                split: ctx.layout.training_set_file(split, qid)
                for split, qid in training_set.items()
                if qid
            },
        }
    }


def _first(*values):
    return next((v for v in values if v is not None), None)
