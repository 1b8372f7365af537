"""Step caching: the cache key of a SageMaker job request, taken from the request dict itself.

Two requests get the same key when they would compute the same thing: the same image, instance
settings, arguments, hyperparameters and environment, and inputs with the same content. What
differs between two runs of an unchanged step is left out: the job's name, where this run's
outputs go (processing outputs, ``OutputDataConfig.S3OutputPath``, ``TransformOutput``, the
checkpoint, Debugger and profiler output paths) and the tags. Each input ``s3://`` URI (a
channel, a processing input, the transform input, a hyperparameter such as
``sagemaker_submit_directory``) stands for its content: the target's storage fingerprints it
(``Storage.fingerprint``), and the fingerprint is passed in, so this module does no I/O.

A per-run value that changes what the job does stays in the key on purpose: the feature
preparation's ``--event-time`` stamps the records it puts in the Feature Store, which this run's
training-set queries select, so that job runs on every run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

# Job types with a cache, and each request's job name field.
NAME_FIELDS = {
    "Processing": "ProcessingJobName",
    "Training": "TrainingJobName",
    "Transform": "TransformJobName",
}
# Request parts that hold no input and change nothing the job computes: where its by-products
# go and how it is labeled.
_DROPPED = ("Tags", "CheckpointConfig", "ExperimentConfig", "TensorBoardOutputConfig")
_OUTPUT_PATH = "S3OutputPath"
JOB_PLACEHOLDER = "<job>"


def output_uris(job_type: str, request: dict) -> dict[str, str]:
    """Where the job writes what downstream reads: ``{output name: s3 prefix}`` (processing:
    each output by its name; training: ``model``, the output path; transform: ``transform``)."""
    if job_type == "Processing":
        outputs = (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        return {o["OutputName"]: o["S3Output"]["S3Uri"] for o in outputs if "S3Output" in o}
    if job_type == "Training":
        path = (request.get("OutputDataConfig") or {}).get(_OUTPUT_PATH)
        return {"model": path} if path else {}
    if job_type == "Transform":
        path = (request.get("TransformOutput") or {}).get(_OUTPUT_PATH)
        return {"transform": path} if path else {}
    raise ValueError(f"no step cache for {job_type} jobs; known: {', '.join(NAME_FIELDS)}")


def _by_product_paths(request: dict) -> list[str]:
    """Debugger and profiler output paths: this run's, read by nobody who needs the key."""
    found = [
        (request.get(part) or {}).get(_OUTPUT_PATH)
        for part in ("DebugHookConfig", "ProfilerConfig")
    ]
    for rules in ("DebugRuleConfigurations", "ProfilerRuleConfigurations"):
        found += [r.get(_OUTPUT_PATH) for r in request.get(rules) or []]
    return [p for p in found if p]


def _without_run_parts(job_type: str, request: dict) -> dict:
    """The request less its per-run parts (a deep copy; the caller's request is left as is)."""
    stripped = json.loads(json.dumps(request, default=str))
    stripped.pop(NAME_FIELDS[job_type], None)
    for part in _DROPPED:
        stripped.pop(part, None)
    for part in ("OutputDataConfig", "TransformOutput", "DebugHookConfig", "ProfilerConfig"):
        if isinstance(stripped.get(part), dict):
            stripped[part].pop(_OUTPUT_PATH, None)
    for rules in ("DebugRuleConfigurations", "ProfilerRuleConfigurations"):
        for rule in stripped.get(rules) or []:
            rule.pop(_OUTPUT_PATH, None)
    for output in (stripped.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        (output.get("S3Output") or {}).pop("S3Uri", None)
    return stripped


def _run_path(uri: str, run_paths: list[str]) -> int | None:
    """The index of the per-run path ``uri`` is or lies under, else None."""
    for i, path in enumerate(run_paths):
        path = path.rstrip("/")
        if uri.rstrip("/") == path or uri.startswith(f"{path}/"):
            return i
    return None


def _walk(value: Any, on_uri: Callable[[str], str]) -> Any:
    """``value`` with each ``s3://`` string (bare, or JSON-quoted as script-mode hyperparameters
    are) replaced by ``on_uri(uri)``."""
    if isinstance(value, dict):
        return {k: _walk(v, on_uri) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, on_uri) for v in value]
    if isinstance(value, str):
        bare = value.strip('"')
        if bare.startswith("s3://"):
            return on_uri(bare)
    return value


def _renamed(value: Any, old: str, new: str) -> Any:
    """``value`` with ``old`` (the job's name) replaced by ``new`` in every string."""
    if isinstance(value, dict):
        return {k: _renamed(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, old, new) for v in value]
    return value.replace(old, new) if isinstance(value, str) else value


def _keyed(job_type: str, request: dict, on_input: Callable[[str], str]) -> dict:
    """The request less its per-run parts; each remaining URI under one of this run's output
    paths becomes ``<output i>``, each other one ``on_input(uri)``; the job's name ``<job>``."""
    run_paths = [*output_uris(job_type, request).values(), *_by_product_paths(request)]

    def on_uri(uri: str) -> str:
        index = _run_path(uri, run_paths)
        return on_input(uri) if index is None else f"<output {index}>"

    keyed = _walk(_without_run_parts(job_type, request), on_uri)
    name = request.get(NAME_FIELDS[job_type])
    return _renamed(keyed, name, JOB_PLACEHOLDER) if name else keyed


def input_uris(job_type: str, request: dict) -> list[str]:
    """Every ``s3://`` URI the request reads, sorted: what the caller fingerprints for
    :func:`cache_key`."""
    found: set[str] = set()

    def note(uri: str) -> str:
        found.add(uri)
        return uri

    _keyed(job_type, request, note)
    return sorted(found)


def keyed_request(job_type: str, request: dict, fingerprints: dict[str, str]) -> dict:
    """What the key is a hash of: the request less its per-run parts, each input URI replaced by
    ``content:<fingerprints[uri]>`` (a content hash of each of :func:`input_uris`)."""
    missing = set(input_uris(job_type, request)) - set(fingerprints)
    if missing:
        raise ValueError(f"no fingerprint for {', '.join(sorted(missing))}")
    return _keyed(job_type, request, lambda uri: f"content:{fingerprints[uri]}")


def cache_key(job_type: str, request: dict, fingerprints: dict[str, str]) -> str:
    """The request's cache key: a sha256 of :func:`keyed_request`, 24 hex digits."""
    keyed = keyed_request(job_type, request, fingerprints)
    text = json.dumps([job_type, keyed], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def entry_uri(bucket: str, job_type: str, key: str) -> str:
    """Where the completed job of ``key`` is recorded: in the bucket its outputs went to."""
    return f"s3://{bucket}/cache/steps/{job_type.lower()}/{key}.json"
