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
from include.pipeline.core.s3 import split_s3_uri
from include.pipeline.documents import bias as bias_doc
from include.pipeline.documents import evaluation as evaluation_doc
from include.pipeline.documents import summary as summary_doc
from include.pipeline.layout import Layout, RunLayout

log = logging.getLogger(__name__)

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


# --- the reading layer: the target's storage and clients -------------------------------------


def _target(settings: pipeline_settings.Settings | None):
    from include.pipeline import targets

    return targets.load(_settings(settings))


def read_bytes(uri: str, settings: pipeline_settings.Settings | None = None) -> bytes:
    """The bytes stored at an ``s3://`` URI (the target's storage).

    Raises :class:`ArtifactNotFound` when nothing is stored there.
    """
    storage = _target(settings).storage
    try:
        return storage.read(uri)
    except FileNotFoundError:
        raise ArtifactNotFound(f"{uri} does not exist ({storage.location(uri)})") from None


def _list_keys(prefix_uri: str, settings: pipeline_settings.Settings) -> list[str]:
    """Every object URI under a prefix, sorted."""
    return _target(settings).storage.list(prefix_uri)


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
    """The URI of the servable file ``uri`` names, checked as written and once resolved.

    Rejects, with :class:`ArtifactRejected`: other schemes and buckets; ``..`` and empty
    segments, backslashes, ``%``, ``?`` and ``#`` (URL syntax, no part of a key the pipeline
    writes), control characters; keys S3 refuses (over 1,024 bytes) or the lake cannot hold (a
    segment over 255 bytes); engine state and file types the plugin does not serve. A link in
    the lake is followed first and its target checked the same way, since the string does not
    show where it leads.
    """
    s = _settings(settings)
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ArtifactRejected(f"not an s3:// URI: {uri!r}")
    if any(ord(c) < 32 or ord(c) == 127 or c in "\\%?#" for c in uri):
        raise ArtifactRejected(f"URI contains forbidden characters: {uri[:200]!r}")
    _check_key(uri, s)
    try:
        resolved = _target(s).storage.canonical_uri(uri)
    except ValueError as exc:
        raise ArtifactRejected(str(exc)) from exc
    if resolved != uri:
        _check_key(resolved, s)
    return resolved


MAX_KEY_BYTES = 1024  # S3's limit on an object key
MAX_SEGMENT_BYTES = 255  # a file name's limit on the lake's file systems


def _check_key(uri: str, s: pipeline_settings.Settings) -> None:
    bucket, _ = split_s3_uri(uri)
    if bucket != s.bucket:
        raise ArtifactRejected(f"{uri!r} is outside the pipeline bucket s3://{s.bucket}/")
    key = uri[len(f"s3://{bucket}/") :]  # as written: split_s3_uri drops leading slashes
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise ArtifactRejected(f"{uri!r} is not a plain object key")
    if len(key.encode()) > MAX_KEY_BYTES or any(len(p.encode()) > MAX_SEGMENT_BYTES for p in parts):
        raise ArtifactRejected(
            f"{uri[:200]!r}...: key longer than {MAX_KEY_BYTES} bytes or a segment longer than "
            f"{MAX_SEGMENT_BYTES} bytes"
        )
    if parts[0].startswith("_"):
        raise ArtifactRejected(f"{uri!r} is engine state, not an artifact")
    if content_type(key) is None:
        raise ArtifactRejected(f"{uri!r}: file type {posixpath.splitext(key)[1]!r} is not served")


def content_type(key: str) -> str | None:
    """The media type the plugin serves a file as, or ``None`` when it does not serve it."""
    return CONTENT_TYPES.get(posixpath.splitext(key)[1].lower())


# --- runs -------------------------------------------------------------------------------------


def valid_run_id(run_id: str) -> bool:
    """Airflow run ids (``manual__2025-01-01T00:00:00+00:00``) without path separators."""
    return bool(_RUN_ID.match(run_id)) and run_id not in (".", "..")


def load_summary(run_id: str, settings: pipeline_settings.Settings | None = None) -> dict | None:
    """A run's ``summary.json``, or ``None`` when the run (or its summary) does not exist."""
    if not valid_run_id(run_id):
        return None
    uri = RunLayout(_settings(settings), run_id).summary()
    try:
        return summary_doc.parse(read_bytes(uri, settings), run_id, uri)
    except ArtifactNotFound:
        return None


def run_ids(settings: pipeline_settings.Settings | None = None) -> list[str]:
    """The run ids that have a folder under ``runs/`` (one listing level, not every artifact)."""
    s = _settings(settings)
    return _target(s).storage.folders(Layout(s).runs())


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


def registration_status(summary: dict, settings=None) -> str | None:
    """The approval status of the run's version as the registry says it now, so an Approve or
    Reject given after the summary was written shows; the summary's own figure when the
    registry cannot say. ``None`` when the run registered nothing."""
    reg = summary.get("registration") if isinstance(summary, dict) else None
    if not isinstance(reg, dict) or reg.get("skipped"):
        return None
    arn = reg.get("model_package_arn")
    if isinstance(arn, str) and _group_of(arn) is not None:
        try:
            client = _target(settings).client("sagemaker")
            live = client.describe_model_package(ModelPackageName=arn).get("ModelApprovalStatus")
            if live:
                return live
        except Exception as exc:  # the registry is gone or unreachable: the summary's figure
            log.warning("Could not describe %s: %s", arn, exc)
    return reg.get("status")


def deployment_outcome(summary: dict) -> dict:
    """What the run deployed: ``{"deployed", "candidate", "endpoint", "reason"}``. A run that
    deployed nothing says why (the approval was rejected, a gate skipped registration, the run
    ended before deployment); ``reason`` is ``None`` only when the run deployed."""
    dep = _get(summary, "deployment")
    if isinstance(dep, dict) and dep.get("endpoint_name") and not dep.get("skipped"):
        candidate = dep.get("candidate") or _get(summary, "leaderboard", "best")
        return {
            "deployed": True,
            "candidate": candidate,
            "endpoint": dep["endpoint_name"],
            "reason": None,
        }
    registration = _get(summary, "registration")
    if isinstance(dep, dict) and dep.get("skipped"):
        reason = str(dep["skipped"])
    elif isinstance(registration, dict) and registration.get("skipped"):
        reason = f"nothing was registered: {registration['skipped']}"
    else:
        reason = f"the run ended ({summary.get('state') or 'unknown state'}) before deployment"
    return {"deployed": False, "candidate": None, "endpoint": None, "reason": reason}


def run_row(summary: dict, settings=None) -> dict:
    """The key facts of a run, one row of the index (and of ``/api/runs``); the registration
    status as the registry says it now (:func:`registration_status`)."""
    registration = summary.get("registration") if isinstance(summary, dict) else None
    if isinstance(registration, dict) and registration.get("skipped"):
        registered = f"skipped: {registration['skipped']}"
    else:
        registered = registration_status(summary, settings)
    violations = bias_doc.violations_of(summary_doc.entry(summary, "bias"))
    outcome = deployment_outcome(summary)
    return {
        "run_id": summary.get("run_id"),
        "dag_id": summary.get("dag_id"),
        "target": summary.get("target"),
        "state": summary.get("state"),
        "started_at": summary.get("started_at"),
        "finished_at": summary.get("finished_at"),
        "rows": _get(summary, "ingestion", "rows"),
        "bias_violations": None if violations is None else len(violations),
        "validation_accuracy": summary_doc.validation_accuracy(summary),
        "accuracy": _get(summary, "evaluation", "accuracy"),
        "macro_f1": _get(summary, "evaluation", "macro_f1"),
        "registration": registered,
        "endpoint": outcome["endpoint"],
        "deployed": outcome["deployed"],
        "not_deployed_because": outcome["reason"],
    }


# --- run sections -----------------------------------------------------------------------------


def leaderboard(summary: dict) -> dict | None:
    """The run's candidates, best first (the summary's copy of ``leaderboard.json``): one row
    each of metric, training time, model size and inference latency per review. ``deployed``
    marks only the candidate this run deployed."""
    board = summary_doc.entry(summary, "leaderboard")
    if not isinstance(board, dict) or not board.get("entries"):
        return None
    deployed = deployment_outcome(summary)
    rows = [
        {
            "candidate": e.get("candidate"),
            "accuracy": e.get("accuracy"),
            "accuracy_interval": e.get("accuracy_interval"),
            "n_samples": e.get("n_samples"),
            "macro_f1": e.get("macro_f1"),
            "training_time_s": e.get("training_time_s"),
            "model_size_mb": None
            if e.get("model_size_bytes") is None
            else round(e["model_size_bytes"] / 1e6, 3),
            "inference_ms_per_review": e.get("inference_ms_per_review"),
            "evaluation_uri": e.get("evaluation_uri"),
            "bias_analysis_uri": e.get("bias_analysis_uri"),
            "deployed": deployed["deployed"] and e.get("candidate") == deployed["candidate"],
        }
        for e in board["entries"]
    ]
    failed = [
        {"candidate": f.get("candidate"), "reason": f.get("reason")}
        for f in board.get("failed") or []
        if isinstance(f, dict)
    ]
    return {
        "metric": board.get("metric"),
        "best": board.get("best"),
        "rows": rows,
        "failed": failed,
    }


def training_series(summary: dict, settings=None) -> dict[str, list[float]] | None:
    """The training curves ``{series: [values...]}``: the history the training job saved with
    the model, as the evaluation job published it in ``evaluation.json``."""
    report = evaluation_report(summary, settings)
    history = report.training_history if report else None
    curves = history.to_dict().items() if history else ()
    series = {k: v for k, v in curves if v and k in history.CURVES}
    return series or None


def evaluation_report(summary: dict, settings=None) -> evaluation_doc.Evaluation | None:
    """``evaluation.json``, or ``None`` before the evaluation job wrote it (or when it is not
    in its owner's shape: logged)."""
    uri = _get(summary_doc.entry(summary, "evaluation"), "uri")
    if not uri:
        return None
    try:
        return evaluation_doc.parse(read_bytes(uri, settings), uri)
    except ArtifactNotFound:
        return None
    except evaluation_doc.DocumentError as exc:
        log.warning("%s", exc)
        return None


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
    from botocore.exceptions import ClientError

    client = _target(s).client("sagemaker")

    def describe(a):
        return client.describe_model_package(ModelPackageName=a)

    def list_group(g):
        return client.list_model_packages(ModelPackageGroupName=g, MaxResults=100)

    # ARNs carry the group name lower-cased; the describe call knows its real spelling.
    try:
        group = describe(arn).get("ModelPackageGroupName") or _group_of(arn)
    except ClientError as exc:  # not registered (yet), or the registry is gone
        log.warning("Could not describe %s: %s", arn, exc)
        return None
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
                "decision": merged.get("ApprovalDescription"),
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

    The run's endpoint via DescribeEndpoint (without a run: every endpoint ListEndpoints
    names). Empty when none exists yet; one that cannot be described is left out.
    """
    from botocore.exceptions import ClientError

    s = _settings(settings)
    docs: list[dict] = []
    name = _get(summary, "deployment", "endpoint_name") if summary else None
    try:
        client = _target(s).client("sagemaker")
        names = (
            [name] if name else [e["EndpointName"] for e in client.list_endpoints()["Endpoints"]]
        )
        for endpoint in names:
            try:
                docs.append(client.describe_endpoint(EndpointName=endpoint))
            except ClientError as exc:
                log.warning("Could not describe endpoint %s: %s", endpoint, exc)
    except (ClientError, OSError) as exc:
        log.warning("Could not list endpoints: %s", exc)
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


# --- drift charts: one feature of one endpoint, baseline vs the latest monitoring windows -----

# SageMaker's EndpointName rule; a feature name as monitor.py writes them.
_ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_FEATURE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def drift_features(endpoint_name: str, settings=None) -> list[str]:
    """The features the newest window of ``endpoint_name`` has statistics for (chart order)."""
    from include.pipeline.documents import monitoring as monitoring_doc

    s = _settings(settings)
    store = _target(s).storage
    layout = Layout(s)
    for name in sorted(store.folders(layout.monitoring_reports(endpoint_name)), reverse=True):
        uri = layout.monitoring_report(endpoint_name, name) + monitoring_doc.STATISTICS_FILE
        stats = read_json(uri, s)
        if isinstance(stats, dict):
            return [f["name"] for f in stats.get("features", []) if "name" in f]
    return []


def drift_series(endpoint_name: str, feature: str, settings=None) -> dict | None:
    """A drift chart's data (:func:`include.pipeline.documents.monitoring.drift`); ``None`` for
    a name that is no endpoint or feature name, or when no window has been judged yet."""
    from include.pipeline.documents import monitoring as monitoring_doc

    if not _ENDPOINT_NAME.match(endpoint_name) or not _FEATURE_NAME.match(feature):
        return None
    s = _settings(settings)
    try:
        return monitoring_doc.drift(_target(s).storage, s, endpoint_name, feature)
    except (ValueError, KeyError, TypeError):  # a broken document hides the chart, not the page
        log.exception("drift chart of %s / %s", endpoint_name, feature)
        return None


def _shares(feature: dict | None) -> dict[str, float]:
    buckets = (((feature or {}).get("string_statistics") or {}).get("distribution") or {}).get(
        "categorical", {}
    ).get("buckets") or []
    total = sum(b["count"] for b in buckets) or 1
    return {str(b["value"]): b["count"] / total for b in buckets}


def drift_png(series: dict) -> bytes:
    """Numerical feature: each window's mean with its standard deviation against the baseline's
    (dashed line and band); categorical: each value's share in the baseline and the windows.
    Windows with a violation on the feature are drawn in red."""
    feature, windows, base = series["feature"], series["windows"], series["baseline"]
    labels = [w["window"].replace("T", " ") + "h" for w in windows]
    fig, ax = _figure(6.4, 3.4)
    numeric = any(
        "numerical_statistics" in (f or {}) for f in [base, *(w["statistics"] for w in windows)]
    )
    if numeric:
        stats = [(w["statistics"] or {}).get("numerical_statistics") for w in windows]
        xs = [i for i, st in enumerate(stats) if st]
        means = [stats[i]["mean"] for i in xs]
        ax.errorbar(
            xs,
            means,
            yerr=[stats[i]["std_dev"] for i in xs],
            marker="o",
            capsize=3,
            color="C0",
            label="window mean ± std",
        )
        drifted = [i for i in xs if windows[i]["drifted"]]
        if drifted:
            ax.scatter(
                drifted,
                [stats[i]["mean"] for i in drifted],
                color="C3",
                zorder=3,
                label="drift violation",
            )
        if base and "numerical_statistics" in base:
            b = base["numerical_statistics"]
            ax.axhline(b["mean"], color="black", linestyle="--", linewidth=1, label="baseline")
            ax.axhspan(b["mean"] - b["std_dev"], b["mean"] + b["std_dev"], color="0.85")
        ax.set_ylabel(feature)
        ax.set_xticks(range(len(labels)), labels)
        ax.margins(x=0.15)
    else:
        columns = [("baseline", _shares(base), False)] if base else []
        columns += [
            (lab, _shares(w["statistics"]), w["drifted"])
            for lab, w in zip(labels, windows, strict=True)
        ]
        values = sorted({v for _, shares, _ in columns for v in shares})
        width = 0.8 / max(len(values), 1)
        for j, value in enumerate(values):
            ax.bar(
                [i + j * width for i in range(len(columns))],
                [shares.get(value, 0.0) for _, shares, _ in columns],
                width,
                label=value,
                color=f"C{j % 10}",
            )
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(columns))], [c[0] for c in columns])
        for tick, (_, _, drifted) in zip(ax.get_xticklabels(), columns, strict=True):
            if drifted:
                tick.set_color("C3")
        ax.set_ylabel("share of reviews")
        ax.set_ylim(0, 1)
    if len(labels) > 3:
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_title(f"{feature}: baseline vs monitoring windows")
    ax.legend(fontsize="x-small", ncol=2)
    return _png(fig)


def notifications(
    settings: pipeline_settings.Settings | None = None,
    *,
    run_id: str | None = None,
    limit: int = 20,
) -> list[dict]:
    """The latest notifications of ``PIPELINE_NOTIFY=lake`` (newest first), those about
    ``run_id`` alone when given; none when the log is not written yet."""
    from include.pipeline.documents import notifications as notifications_doc

    s = _settings(settings)
    with _target(s).storage.as_file(Layout(s).notifications()) as path:
        found = notifications_doc.read_notifications(path)
    if run_id is not None:
        found = [n for n in found if n.get("run_id") == run_id]
    return [dict(n) for n in reversed(found[-limit:])]
