"""What the "Reviews pipeline" UI plugin shows, read from the lake (or S3 on the aws target).

Pure Python with no heavy imports at module level: the Airflow API server imports the plugin at
start-up. Every reader is defensive: a piece that a run has not written yet is ``None`` (shown as
"not yet"), never an exception that becomes a 500. Charts are rendered server-side with
matplotlib's Agg backend, imported inside the functions that draw.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import re
from typing import Any

from include.pipeline import settings as pipeline_settings
from include.pipeline.targets.local import lake as local_lake

log = logging.getLogger(__name__)

RUNS_PREFIX = "runs"
SUMMARY_NAME = "summary.json"
SAGEMAKER_STATE = "_sagemaker"
CONTENT_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".pdf": "application/pdf",
    ".ipynb": "application/json",
}
_RUN_ID = re.compile(r"^[A-Za-z0-9_.:+\-]{1,250}$")
_RECENT_CAPTURE_FILES = 20


class ArtifactNotFound(FileNotFoundError):
    """The URI is well formed and allowed, but nothing is stored there (yet)."""


class ArtifactRejected(ValueError):
    """The URI is not one the plugin may serve (wrong scheme or bucket, traversal, odd type)."""


def _settings(settings: pipeline_settings.Settings | None) -> pipeline_settings.Settings:
    return settings or pipeline_settings.load()


# --- the reading layer: one function per access kind, local lake or S3 by target ------------


def _s3_hook(settings: pipeline_settings.Settings):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=settings.aws_conn_id)


def read_bytes(uri: str, settings: pipeline_settings.Settings | None = None) -> bytes:
    """The bytes stored at an ``s3://`` URI: the local lake or S3 (S3Hook), by the target.

    Raises :class:`ArtifactNotFound` when nothing is stored there.
    """
    s = _settings(settings)
    bucket, key = local_lake.split_s3_uri(uri)
    if s.is_local:
        path = local_lake.resolve(uri, s.lake)
        if not path.is_file():
            raise ArtifactNotFound(f"{uri} does not exist in the lake ({path})")
        return path.read_bytes()
    hook = _s3_hook(s)
    if not hook.check_for_key(key, bucket_name=bucket):
        raise ArtifactNotFound(f"{uri} does not exist")
    # read_key decodes as UTF-8; PNG artifacts need the raw body.
    return hook.get_key(key, bucket_name=bucket).get()["Body"].read()


def _list_keys(prefix_uri: str, settings: pipeline_settings.Settings) -> list[str]:
    """Every object URI under a prefix, sorted."""
    bucket, key = local_lake.split_s3_uri(prefix_uri)
    if settings.is_local:
        root = settings.lake / bucket
        return [
            f"s3://{bucket}/{p.relative_to(root).as_posix()}"
            for p in local_lake.list_files(prefix_uri, settings.lake)
        ]
    keys = _s3_hook(settings).list_keys(bucket_name=bucket, prefix=key) or []
    return sorted(f"s3://{bucket}/{k}" for k in keys)


def read_json(uri: str | None, settings: pipeline_settings.Settings | None = None) -> Any | None:
    """A JSON document at ``uri``, or ``None`` when there is none (yet) or it is not valid JSON."""
    if not uri:
        return None
    try:
        return json.loads(read_bytes(uri, settings))
    except ArtifactNotFound:
        return None
    except ValueError as exc:
        log.warning("Could not read JSON at %s: %s", uri, exc)
        return None


# --- artifact URIs the plugin may serve --------------------------------------------------------


def check_artifact_uri(uri: str, settings: pipeline_settings.Settings | None = None) -> str:
    """The normalised URI when it names a servable file under the configured bucket.

    Rejects other schemes and buckets, ``..`` segments, backslashes, control characters and file
    types the plugin does not serve, with :class:`ArtifactRejected`.
    """
    s = _settings(settings)
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ArtifactRejected(f"not an s3:// URI: {uri!r}")
    if any(ord(c) < 32 for c in uri) or "\\" in uri or "%" in uri:
        raise ArtifactRejected(f"URI contains forbidden characters: {uri!r}")
    bucket, key = local_lake.split_s3_uri(uri)
    if bucket != s.bucket:
        raise ArtifactRejected(f"{uri!r} is outside the pipeline bucket s3://{s.bucket}/")
    key = uri[len(f"s3://{bucket}/") :]  # as written: split_s3_uri drops leading slashes
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise ArtifactRejected(f"{uri!r} is not a plain object key")
    if parts[0].startswith("_"):
        raise ArtifactRejected(f"{uri!r} is engine state, not an artifact")
    if content_type(key) is None:
        raise ArtifactRejected(f"{uri!r}: file type {posixpath.splitext(key)[1]!r} is not served")
    return f"s3://{bucket}/{posixpath.normpath(key)}"


def content_type(key: str) -> str | None:
    """The media type the plugin serves a file as, or ``None`` when it does not serve it."""
    return CONTENT_TYPES.get(posixpath.splitext(key)[1].lower())


# --- runs -------------------------------------------------------------------------------------


def valid_run_id(run_id: str) -> bool:
    """Airflow run ids (``manual__2025-01-01T00:00:00+00:00``) without path separators."""
    return bool(_RUN_ID.match(run_id)) and run_id not in (".", "..")


def summary_uri(run_id: str, settings: pipeline_settings.Settings | None = None) -> str:
    return _settings(settings).run_uri(run_id, SUMMARY_NAME)


def load_summary(run_id: str, settings: pipeline_settings.Settings | None = None) -> dict | None:
    """A run's ``summary.json``, or ``None`` when the run (or its summary) does not exist."""
    if not valid_run_id(run_id):
        return None
    doc = read_json(summary_uri(run_id, settings), settings)
    if not isinstance(doc, dict):
        return None
    doc.setdefault("run_id", run_id)
    return doc


def run_ids(settings: pipeline_settings.Settings | None = None) -> list[str]:
    """The run ids that have a folder under ``runs/`` (one listing level, not every artifact)."""
    s = _settings(settings)
    if s.is_local:
        root = local_lake.resolve(s.s3_uri(RUNS_PREFIX), s.lake)
        return (
            sorted(p.parent.name for p in root.glob(f"*/{SUMMARY_NAME}")) if root.is_dir() else []
        )
    _, runs_key = local_lake.split_s3_uri(s.s3_uri(RUNS_PREFIX))
    prefixes = _s3_hook(s).list_prefixes(bucket_name=s.bucket, prefix=f"{runs_key}/", delimiter="/")
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in prefixes or [])


def list_runs(settings: pipeline_settings.Settings | None = None) -> list[dict]:
    """All run summaries, newest first (by ``started_at``, then run id)."""
    s = _settings(settings)
    summaries = [d for d in (load_summary(r, s) for r in run_ids(s)) if d is not None]
    summaries.sort(key=lambda d: (str(d.get("started_at") or ""), str(d["run_id"])), reverse=True)
    return summaries


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def run_row(summary: dict) -> dict:
    """The key facts of a run, one row of the index (and of ``/api/runs``)."""
    registration = summary.get("registration") if isinstance(summary, dict) else None
    if isinstance(registration, dict) and registration.get("skipped"):
        registered = f"skipped: {registration['skipped']}"
    else:
        registered = _get(summary, "registration", "status")
    violations = _get(summary, "bias", "violations")
    return {
        "run_id": summary.get("run_id"),
        "dag_id": summary.get("dag_id"),
        "target": summary.get("target"),
        "state": summary.get("state"),
        "started_at": summary.get("started_at"),
        "finished_at": summary.get("finished_at"),
        "rows": _get(summary, "ingestion", "rows"),
        "bias_violations": len(violations) if isinstance(violations, list) else None,
        "validation_accuracy": _get(summary, "training", "metrics", "validation_accuracy"),
        "accuracy": _get(summary, "evaluation", "accuracy"),
        "macro_f1": _get(summary, "evaluation", "macro_f1"),
        "registration": registered,
        "endpoint": _get(summary, "deployment", "endpoint_name"),
    }


# --- run sections -----------------------------------------------------------------------------


def training_series(summary: dict, settings=None) -> dict[str, list[float]] | None:
    """The training curves: ``{metric: [values...]}`` from ``training.metrics_uri``."""
    doc = read_json(_get(summary, "training", "metrics_uri"), settings)
    if not isinstance(doc, dict):
        return None
    series = {}
    for name, values in doc.items():
        if isinstance(values, list):
            numbers = [float(v) for v in values if isinstance(v, int | float)]
            if numbers:
                series[str(name)] = numbers
    return series or None


def evaluation_report(summary: dict, settings=None) -> dict | None:
    """``evaluation.json`` (per-class scores etc.), or ``None`` before the evaluation job ran."""
    doc = read_json(_get(summary, "evaluation", "uri"), settings)
    return doc if isinstance(doc, dict) else None


def bias_metrics(summary: dict, settings=None) -> list[dict]:
    """Pre-training bias metrics from the Clarify ``analysis.json``: one row per facet value.

    Rows: ``{facet, value, metric, metric_value}``; empty before the bias job ran.
    """
    doc = read_json(_get(summary, "bias", "analysis_uri"), settings)
    facets = _get(doc, "pre_training_bias_metrics", "facets")
    rows = []
    if isinstance(facets, dict):
        for facet, groups in facets.items():
            for group in groups if isinstance(groups, list) else []:
                for metric in _get(group, "metrics") or []:
                    if isinstance(metric, dict) and isinstance(metric.get("value"), int | float):
                        rows.append(
                            {
                                "facet": facet,
                                "value": group.get("value_or_threshold"),
                                "metric": metric.get("name"),
                                "metric_value": float(metric["value"]),
                            }
                        )
    return rows


def _group_of(model_package_arn: str) -> str | None:
    """``arn:aws:sagemaker:r:a:model-package/<group>/<version>`` -> ``<group>``."""
    resource = model_package_arn.split(":", 5)[-1] if model_package_arn.count(":") >= 5 else ""
    parts = resource.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == "model-package" else None


def _summaries_of(listing: Any) -> list[dict]:
    if isinstance(listing, dict):
        listing = listing.get("ModelPackageSummaryList", [])
    return [x for x in listing or [] if isinstance(x, dict)]


def registry_versions(summary: dict, settings=None) -> dict | None:
    """The model package group of a run's registration: every version with status and lineage.

    ``{"group": name, "versions": [{arn, version, status, created, metrics, lineage}]}``, or
    ``None`` when the run registered nothing (yet).
    """
    s = _settings(settings)
    arn = _get(summary, "registration", "model_package_arn")
    if not isinstance(arn, str) or _group_of(arn) is None:
        return None
    if s.is_local:
        from include.pipeline.targets.local.sagemaker import registry

        if not registry.db_path(s.lake).is_file():  # reading must not create the registry
            return None

        def describe(a):
            return registry.describe_model_package(a, s.lake)

        def list_group(g):
            return registry.list_model_packages(g, s.lake)
    else:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        client = SageMakerHook(aws_conn_id=s.aws_conn_id).conn

        def describe(a):
            return client.describe_model_package(ModelPackageName=a)

        def list_group(g):
            return client.list_model_packages(ModelPackageGroupName=g, MaxResults=100)

    # ARNs carry the group name lower-cased; the describe call knows its real spelling.
    group = describe(arn).get("ModelPackageGroupName") or _group_of(arn)
    listing = list_group(group)
    versions = []
    for item in _summaries_of(listing):
        package_arn = item.get("ModelPackageArn")
        detail = {}
        if package_arn:
            try:
                detail = describe(package_arn) or {}
            except Exception as exc:  # one broken version must not hide the others
                log.warning("Could not describe %s: %s", package_arn, exc)
        merged = {**item, **detail}
        versions.append(
            {
                "arn": package_arn,
                "version": merged.get("ModelPackageVersion"),
                "status": merged.get("ModelApprovalStatus"),
                "created": _when(merged.get("CreationTime")),
                "metrics": _model_metrics(merged),
                "lineage": merged.get("CustomerMetadataProperties") or {},
                "this_run": package_arn == arn,
            }
        )
    versions.sort(key=lambda v: v["version"] or 0, reverse=True)
    return {"group": group, "versions": versions}


def _when(value: Any) -> str:
    """A timestamp to the second (datetimes from DuckDB or boto3, or ISO strings)."""
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return str(value or "")[:19].replace("T", " ")


def _model_metrics(package: dict) -> dict[str, str]:
    """Where a version's metric reports are: ``{"ModelQuality.Statistics": s3 uri, ...}``."""
    found = {}
    for section, reports in (package.get("ModelMetrics") or {}).items():
        for report, source in (reports or {}).items() if isinstance(reports, dict) else []:
            if isinstance(source, dict) and source.get("S3Uri"):
                found[f"{section}.{report}"] = source["S3Uri"]
    return found


def endpoints(summary: dict | None = None, settings=None) -> list[dict]:
    """Endpoints with variants, weights and recent traffic (data-capture records per variant).

    Locally every endpoint document under ``<lake>/_sagemaker/endpoints/``; on aws the run's
    endpoint via DescribeEndpoint. Empty when none exists yet.
    """
    s = _settings(settings)
    docs: list[dict] = []
    name = _get(summary, "deployment", "endpoint_name") if summary else None
    if s.is_local:
        folder = s.lake / SAGEMAKER_STATE / "endpoints"
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("Skipping unreadable endpoint state %s: %s", path, exc)
                continue
            if isinstance(doc, dict):
                doc.setdefault("EndpointName", path.stem)
                docs.append(doc)
    elif name:
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        docs.append(
            SageMakerHook(aws_conn_id=s.aws_conn_id).conn.describe_endpoint(EndpointName=name)
        )
    return [_endpoint_view(doc, s, this_run=doc.get("EndpointName") == name) for doc in docs]


def _endpoint_view(doc: dict, settings, this_run: bool) -> dict:
    variants = []
    for kind, key in (("production", "ProductionVariants"), ("shadow", "ShadowProductionVariants")):
        for v in doc.get(key) or []:
            if isinstance(v, dict):
                variants.append(
                    {
                        "kind": kind,
                        "name": v.get("VariantName"),
                        "current_weight": v.get("CurrentWeight"),
                        "desired_weight": v.get("DesiredWeight"),
                        "instances": v.get("CurrentInstanceCount"),
                        "model": v.get("ModelName"),
                    }
                )
    return {
        "name": doc.get("EndpointName"),
        "status": doc.get("EndpointStatus"),
        "config": doc.get("EndpointConfigName"),
        "failure_reason": doc.get("FailureReason"),
        "updated": _when(doc.get("LastModifiedTime") or doc.get("CreationTime")),
        "variants": variants,
        "traffic": recent_traffic(doc, settings),
        "this_run": this_run,
    }


def recent_traffic(endpoint: dict, settings=None) -> dict[str, int]:
    """Captured invocations per variant in the most recent data-capture files.

    SageMaker writes capture files as ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/
    *.jsonl``, one record a line; counted over the newest few files of each variant.
    """
    s = _settings(settings)
    destination = _get(endpoint, "DataCaptureConfig", "DestinationS3Uri")
    name = endpoint.get("EndpointName")
    if not destination or not name:
        return {}
    try:
        uris = _list_keys(f"{destination.rstrip('/')}/{name}/", s)
    except (ValueError, OSError) as exc:
        log.warning("Could not list data capture for %s: %s", name, exc)
        return {}
    by_variant: dict[str, list[str]] = {}
    prefix_len = len(f"{destination.rstrip('/')}/{name}/")
    for uri in uris:
        if uri.endswith(".jsonl"):
            by_variant.setdefault(uri[prefix_len:].split("/", 1)[0], []).append(uri)
    counts = {}
    for variant, files in sorted(by_variant.items()):
        total = 0
        for uri in files[-_RECENT_CAPTURE_FILES:]:
            try:
                total += sum(1 for line in read_bytes(uri, s).splitlines() if line.strip())
            except ArtifactNotFound:
                continue
        counts[variant] = total
    return counts


# --- charts (matplotlib Agg, imported when drawing) -------------------------------------------


def _figure(width: float = 6.0, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig, tight: bool = True) -> bytes:
    if tight:
        fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def curves_png(series: dict[str, list[float]]) -> bytes:
    """Training curves: losses on the left axis, accuracies on the right."""
    fig, ax = _figure(6.4, 3.6)
    ax.set_xlabel("step / epoch")
    ax.set_ylabel("loss")
    other = None
    for i, (name, values) in enumerate(series.items()):
        target = ax
        if "loss" not in name.lower():
            other = other or ax.twinx()
            other.set_ylabel("accuracy / score")
            target = other
        marker = "o" if len(values) <= 30 else None
        target.plot(
            range(1, len(values) + 1), values, marker=marker, label=name, color=f"C{i % 10}"
        )
    handles, labels = ax.get_legend_handles_labels()
    if other is not None:
        h2, l2 = other.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.set_title("Training curves")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize="small")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return _png(fig, tight=False)


def distribution_png(counts: dict[str, int], title: str) -> bytes:
    """A bar chart of counts per class or category."""
    fig, ax = _figure(5.2, 3.0)
    labels = [str(k) for k in counts]
    ax.bar(labels, [float(v) for v in counts.values()], color="#4c78a8")
    ax.set_title(title)
    ax.set_ylabel("reviews")
    if len(labels) > 5:
        ax.tick_params(axis="x", labelrotation=45)
    return _png(fig)


def bias_png(rows: list[dict]) -> bytes:
    """Bias metrics per facet value, one group of bars per metric."""
    fig, ax = _figure(7.0, 3.6)
    metrics = sorted({r["metric"] for r in rows})
    values = sorted({str(r["value"]) for r in rows})
    width = 0.8 / max(len(values), 1)
    for i, value in enumerate(values):
        heights = [
            next(
                (r["metric_value"] for r in rows if r["metric"] == m and str(r["value"]) == value),
                0.0,
            )
            for m in metrics
        ]
        ax.bar([j + i * width for j in range(len(metrics))], heights, width, label=value)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(metrics))], metrics)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_title("Pre-training bias metrics by facet value")
    ax.legend(fontsize="x-small", ncol=2)
    return _png(fig)


CHARTS = ("curves", "sentiment", "category", "bias")


def chart_png(name: str, summary: dict, settings=None) -> bytes | None:
    """One of :data:`CHARTS` for a run, or ``None`` when its data is not there yet."""
    if name == "curves":
        series = training_series(summary, settings)
        return curves_png(series) if series else None
    if name in ("sentiment", "category"):
        counts = _get(summary, "ingestion", f"by_{name}")
        if isinstance(counts, dict) and counts:
            return distribution_png(counts, f"Reviews by {name}")
        return None
    if name == "bias":
        rows = bias_metrics(summary, settings)
        return bias_png(rows) if rows else None
    raise ValueError(f"unknown chart {name!r}; one of {', '.join(CHARTS)}")
