"""The documents the pipeline writes, one owning module each: its typed shape, how it is
written and how it is read. Writers (jobs, tasks) and readers (gates, registry, reports page)
go through these modules, never through ad-hoc dict keys.

- :mod:`.evaluation` ``evaluation.json`` and the training history (owned by ``include/jobs``,
  which runs in containers; re-exported here),
- :mod:`.bias` the bias gate's verdict,
- :mod:`.rollout` the rollout decisions log (entry shape, append, read),
- :mod:`.rewards` ground truth and the bandit's reward store,
- :mod:`.jsonl` the JSON-lines reader the logs share,
- :mod:`.summary` the run summary ``runs/<run key>/summary.json`` (``layout.run_key``).
"""
