-- Reviews per product category and sentiment: the imbalance the bias report looks at.
SELECT product_category, sentiment, COUNT(*) AS count_reviews
FROM reviews
WHERE raw_hash = '{{ ti.xcom_pull(task_ids="ingest_reviews", key="raw_hash") }}'
GROUP BY product_category, sentiment
ORDER BY product_category, sentiment
