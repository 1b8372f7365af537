"""Re-runs pay only for what changed: a job whose request matches a completed one is reused.

Both targets' job operators (processing, training, transform) ask :func:`cached` before they
create a job. The key is :func:`include.pipeline.requests.step_cache.cache_key` of the request,
its inputs fingerprinted by the target's storage. A completed job is recorded by
:func:`remember` in ``cache/steps/<job type>/<key>.json`` of its outputs' bucket: its name, its
outputs and the result its operator returned.

On a hit the operator creates no job: processing and transform outputs are copied to this run's
output prefixes (downstream reads this run's URIs, and a run's folder holds what it produced);
a training job's model is used where it is (every reader of a training result takes the model,
the metrics and the profiler data from the job's description, which is the cached job's).

The run's ``reuse_steps`` Param turns it off; DAGs without that Param neither reuse nor record.
"""

from __future__ import annotations

import json
from typing import Any

from include.pipeline.core.s3 import split_s3_uri
from include.pipeline.requests import step_cache

REUSE_PARAM = "reuse_steps"
REUSED_KEY = "reused"  # the XCom key naming the reused job


def offered(context) -> bool:
    """Whether the run's DAG offers step reuse (it has the Param): only then are jobs recorded."""
    return REUSE_PARAM in (context.get("params") or {})


def wanted(context) -> bool:
    """Whether this run reuses completed jobs (the Param, true unless a person turned it off)."""
    return offered(context) and bool(context["params"][REUSE_PARAM])


def key(storage, job_type: str, request: dict) -> str:
    fingerprints = {u: storage.fingerprint(u) for u in step_cache.input_uris(job_type, request)}
    return step_cache.cache_key(job_type, request, fingerprints)


def entry_uri(job_type: str, request: dict, cache_key: str) -> str | None:
    """The cache entry's URI, in the bucket of the job's outputs (None: a job with no output)."""
    outputs = step_cache.output_uris(job_type, request)
    if not outputs:
        return None
    bucket, _ = split_s3_uri(next(iter(outputs.values())))
    return step_cache.entry_uri(bucket, job_type, cache_key)


def remember(storage, job_type: str, request: dict, result: dict, log, cache_key=None) -> None:
    """Record a completed job (``result``: its operator's return value) under its key."""
    described = result.get(job_type) or {}
    if described.get(f"{job_type}JobStatus") != "Completed":
        return
    cache_key = cache_key or key(storage, job_type, request)
    uri = entry_uri(job_type, request, cache_key)
    if uri is None:
        return
    entry = {
        "job_type": job_type,
        "key": cache_key,
        "job_name": described.get(step_cache.NAME_FIELDS[job_type]),
        "outputs": step_cache.output_uris(job_type, request),
        "result": {job_type: described},
    }
    storage.write(uri, json.dumps(entry, indent=2, default=str).encode())
    log.info("Recorded %s job %s for reuse (cache key %s)", job_type, entry["job_name"], cache_key)


def _still_there(storage, job_type: str, entry: dict) -> bool:
    """Whether what the cached job produced is still in the bucket (a deleted run folder is a
    miss, not a broken run)."""
    if job_type == "Training":
        model = (entry["result"]["Training"].get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        return bool(model) and storage.exists(model)
    return all(storage.list(prefix) for prefix in entry["outputs"].values())


def lookup(storage, job_type: str, request: dict, cache_key: str) -> dict | None:
    """The cache entry of ``cache_key`` whose outputs are still there, else None."""
    uri = entry_uri(job_type, request, cache_key)
    if uri is None or not storage.exists(uri):
        return None
    entry = storage.read_json(uri)
    return entry if _still_there(storage, job_type, entry) else None


def _copy_prefix(storage, source: str, target: str) -> int:
    """Copy every object under ``source`` to the same place under ``target``; how many."""
    source, target = source.rstrip("/"), target.rstrip("/")
    if source == target:
        return 0
    objects = storage.list(source)
    for uri in objects:
        storage.write(f"{target}{uri[len(source) :]}", storage.read(uri))
    return len(objects)


def reuse(storage, job_type: str, request: dict, entry: dict) -> dict:
    """This run's result from the cached job's: its outputs copied to this run's prefixes
    (processing, transform), its description pointing at them."""
    described: dict[str, Any] = dict(entry["result"][job_type])
    outputs = step_cache.output_uris(job_type, request)
    if job_type != "Training":
        for name, target in outputs.items():
            _copy_prefix(storage, entry["outputs"][name], target)
    if job_type == "Processing":
        described["ProcessingInputs"] = request.get("ProcessingInputs", [])
        described["ProcessingOutputConfig"] = request.get("ProcessingOutputConfig", {})
    elif job_type == "Transform":
        described["TransformInput"] = request.get("TransformInput", {})
        described["TransformOutput"] = request.get("TransformOutput", {})
    return {job_type: described}


def cached(storage, job_type: str, request: dict, context, log) -> tuple[str | None, dict | None]:
    """``(key, result)``: the key (None when the run does not offer reuse) and, on a hit in a
    run that reuses, this run's result from the cached job (logged and pushed as the XCom
    ``reused``); a miss's result is None."""
    if not offered(context):
        return None, None
    cache_key = key(storage, job_type, request)
    if not wanted(context):
        return cache_key, None
    entry = lookup(storage, job_type, request, cache_key)
    if entry is None:
        log.info("No completed %s job matches this request (cache key %s)", job_type, cache_key)
        return cache_key, None
    result = reuse(storage, job_type, request, entry)
    log.info("Reused %s job %s (cache key %s)", job_type, entry["job_name"], cache_key)
    context["ti"].xcom_push(key=REUSED_KEY, value=entry["job_name"])
    return cache_key, result
