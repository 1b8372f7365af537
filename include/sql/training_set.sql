-- One split of the training set from the feature group's offline store: the latest record of
-- each review_id (re-ingestion appends rows; this keeps one), deleted records left out.
-- Runs unchanged on Athena (Glue table of the offline store) and locally on DuckDB.
-- Placeholders: {database}, {table}, {split_type}, {event_time_filter} (one run's records, so a
-- training set never mixes data tokenized by different runs' settings). The run's event time is
-- not a column: two runs over the same reviews get the same training set, byte for byte, so the
-- jobs that read it are reused (step caching) rather than run again.
SELECT review_id, sentiment, label_id, input_ids, review_body, split_type,
       product_category
FROM (
    SELECT *,
           row_number() OVER (
               PARTITION BY review_id
               ORDER BY event_time DESC, api_invocation_time DESC, write_time DESC
           ) AS record_rank
    FROM "{database}"."{table}"
)
WHERE record_rank = 1
  AND NOT is_deleted
  AND split_type = '{split_type}'{event_time_filter}
ORDER BY review_id
