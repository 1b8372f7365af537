-- Reviews per sentiment in the partition this run ingested (runs on Athena and on DuckDB).
SELECT sentiment, COUNT(*) AS count_reviews
FROM reviews
WHERE raw_hash = '{{ ti.xcom_pull(task_ids="ingest_reviews", key="raw_hash") }}'
GROUP BY sentiment
ORDER BY sentiment
