-- Reviews per product category in the partition this run ingested.
SELECT product_category, COUNT(*) AS count_reviews
FROM reviews
WHERE raw_hash = '{{ ti.xcom_pull(task_ids="ingest_reviews", key="raw_hash") }}'
GROUP BY product_category
ORDER BY count_reviews DESC, product_category
