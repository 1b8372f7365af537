-- The training set in the feature group's offline store, per split: the latest record of each
-- review_id (re-ingestion appends rows; this keeps one), deleted records left out.
-- Runs on Athena (the Glue table SageMaker creates) and locally on DuckDB.
SELECT split_type, COUNT(*) AS count_reviews
FROM (
    SELECT split_type, is_deleted,
           row_number() OVER (
               PARTITION BY review_id
               ORDER BY event_time DESC, api_invocation_time DESC, write_time DESC
           ) AS record_rank
    FROM "sagemaker_featurestore"."{{ ti.xcom_pull(task_ids='create_feature_group')['FeatureGroup']['OfflineStoreConfig']['DataCatalogConfig']['TableName'] }}"
)
WHERE record_rank = 1 AND NOT is_deleted
GROUP BY split_type
ORDER BY split_type
