"""The pre-training bias step's Airflow-side glue: publish the analysis config, build the Clarify
request, and gate the result (per-metric thresholds over Clarify's ``analysis.json``).

The same gate runs on both targets because both produce the same ``analysis.json``. Mode
``fail`` stops the run with every violation listed; mode ``warn`` lets it continue and the run
summary carries the violations. The step is this module, its request builder
(:mod:`include.pipeline.requests.bias`) and the local Clarify engine
(:mod:`include.pipeline.targets.local.clarify`). Cheap to import (DAG files use it).
"""

from __future__ import annotations

import json

from include.jobs.feature_records import BALANCED_COLUMNS
from include.pipeline import schema as S
from include.pipeline import storage
from include.pipeline.core import clarify_container
from include.pipeline.documents import bias as bias_doc
from include.pipeline.documents.bias import (
    DEFAULT_THRESHOLDS,
    GATE_MODES,
    PRE_TRAINING_METRICS,
    metric_status,
)
from include.pipeline.layout import RunLayout
from include.pipeline.requests import bias
from include.pipeline.requests.common import job_name
from include.pipeline.settings import Settings

DATASET_HEADERS = [name for name, _ in S.TRANSFORMED_COLUMNS]
# Columns of the prepare job's balanced CSV (``sentiment-balanced`` output).
BALANCED_HEADERS = list(BALANCED_COLUMNS)
# The datasets the step analyses: the ingested rows, and the balanced training rows.
STAGE_HEADERS = {"raw": DATASET_HEADERS, "balanced": BALANCED_HEADERS}


class BiasGateFailed(RuntimeError):
    """Raised in ``fail`` mode; the message lists every violation."""

    def __init__(self, violations: list[dict]):
        self.violations = violations
        super().__init__(
            f"bias gate failed: {len(violations)} violation(s)\n" + format_violations(violations)
        )


def merge_thresholds(overrides: dict | None) -> dict[str, float | None]:
    """DEFAULT_THRESHOLDS updated by Params; unknown metric names or non-numbers are errors."""
    merged = dict(DEFAULT_THRESHOLDS)
    for metric, limit in (overrides or {}).items():
        if metric not in PRE_TRAINING_METRICS:
            raise ValueError(
                f"bias threshold for unknown metric {metric!r}; known: {', '.join(merged)}"
            )
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float)):
            raise ValueError(f"bias threshold for {metric} must be a number or null, got {limit!r}")
        merged[metric] = None if limit is None else float(limit)
    return merged


def _facet_names(params: dict) -> list[str]:
    facets = params.get("bias_facets")
    facets = bias.DEFAULT_PARAMS["bias_facets"] if facets is None else facets
    if isinstance(facets, str | dict):
        facets = [facets]
    return [f if isinstance(f, str) else str(f.get("name_or_index")) for f in facets]


def cddl_note(params: dict) -> str | None:
    """Why CDDL is not gated, for the verdict and the report; None when it is.

    Raises ValueError for a CDDL threshold whose group variable is a facet: that CDDL is 0 by
    construction, and a gate on it would pass whatever the data holds."""
    thresholds = merge_thresholds(params.get("bias_thresholds"))
    group = params.get("bias_group_variable") or bias.DEFAULT_PARAMS["bias_group_variable"]
    if group in _facet_names(params):
        if thresholds["CDDL"] is not None:
            raise ValueError(
                f"bias_thresholds gates CDDL, but its group variable {group!r} is the facet "
                "itself, which makes CDDL 0 by construction: set bias_group_variable to another "
                "column of the data, or the CDDL threshold to null"
            )
        return (
            f"CDDL is reported, not gated: its group variable {group!r} is the facet itself, "
            "which makes it 0 by construction"
        )
    if thresholds["CDDL"] is None:
        return f"CDDL (group variable {group!r}) is reported, not gated: its threshold is null"
    return None


def evaluate_gate(analysis: dict, thresholds: dict) -> list[dict]:
    """Every (facet, value, metric) whose |value| exceeds its threshold.

    ``thresholds`` maps metric name -> max |value| (None: not gated); names missing from it
    are not gated. A gated metric Clarify could not compute (``value`` null) is a violation too,
    since the gate cannot vouch for it. Each violation: ``facet``, ``value_or_threshold``,
    ``metric``, ``value``, ``threshold`` (and ``error`` when not computed).
    """
    pre = analysis.get("pre_training_bias_metrics")
    if not isinstance(pre, dict) or "facets" not in pre:
        raise ValueError("analysis has no pre_training_bias_metrics.facets: not a bias analysis")
    violations = []
    for facet, entries in pre["facets"].items():
        for entry in entries:
            for metric in entry["metrics"]:
                name, value = metric["name"], metric.get("value")
                limit = thresholds.get(name)
                if limit is None:
                    continue
                if value is None:
                    violations.append(
                        {
                            "facet": facet,
                            "value_or_threshold": entry["value_or_threshold"],
                            "metric": name,
                            "value": None,
                            "threshold": limit,
                            "error": metric.get("error", "not computed"),
                        }
                    )
                elif metric_status(name, value, thresholds) == "violation":
                    violations.append(
                        {
                            "facet": facet,
                            "value_or_threshold": entry["value_or_threshold"],
                            "metric": name,
                            "value": value,
                            "threshold": limit,
                        }
                    )
    return violations


def format_violations(violations: list[dict]) -> str:
    """One line per violation, for logs and the run summary."""
    lines = []
    for v in violations:
        shown = "not computed" if v["value"] is None else f"{v['value']}"
        if isinstance(v["value"], float):
            shown = f"{v['value']:.4f}"
        lines.append(
            f"- {v['facet']}={v['value_or_threshold']}: {v['metric']} {shown} "
            f"(|{v['metric']}| must be <= {v['threshold']})"
        )
    return "\n".join(lines)


def apply_gate(analysis: dict, thresholds: dict | None = None, mode: str = "fail") -> dict:
    """Check the gate; raise :class:`BiasGateFailed` in ``fail`` mode, else return the verdict.

    The verdict (for the run summary): ``{"passed", "mode", "violations", "thresholds"}``.
    """
    if mode not in GATE_MODES:
        raise ValueError(f"bias gate mode {mode!r} is not one of {', '.join(GATE_MODES)}")
    limits = merge_thresholds(thresholds)
    violations = evaluate_gate(analysis, limits)
    if violations and mode == "fail":
        raise BiasGateFailed(violations)
    return {"passed": not violations, "mode": mode, "violations": violations, "thresholds": limits}


# ---------------------------------------------------------------- the step's Airflow side


def publish_analysis_configs(settings: Settings, params: dict, *, run_id: str) -> dict[str, str]:
    """Write each stage's ``analysis_config.json`` (from the run's Params); ``{stage: uri}``.

    Publishing is its own task so that :func:`build_request` only builds; rewriting the same
    bytes on a retry is harmless.
    """
    cddl_note(params)  # a gate that cannot fail is refused before any job runs
    store = storage.for_settings(settings)
    uris = {}
    for stage, headers in STAGE_HEADERS.items():
        uri = RunLayout(settings, run_id).bias_config(stage)
        store.write(uri, json.dumps(bias.analysis_config(params, headers), indent=2).encode())
        uris[stage] = uri
    return uris


def build_request(
    settings: Settings, *, run_id: str, config_uri: str, dataset_uri: str, stage: str = "raw"
) -> dict:
    """The Clarify CreateProcessingJob of ``stage`` over the published config."""
    if stage not in STAGE_HEADERS:
        raise ValueError(f"bias stage {stage!r} is not one of {', '.join(STAGE_HEADERS)}")
    return bias.bias_job_request(
        job_name=job_name(f"bias-{stage}", run_id),
        role_arn=settings.role_arn,
        region=settings.region,
        config_uri=config_uri,
        dataset_uri=dataset_uri,
        output_uri=RunLayout(settings, run_id).bias_output(stage),
        settings=settings,
    )


def result(settings: Settings, request: dict, params: dict) -> bias_doc.BiasVerdict:
    """The gate's verdict over the job's analysis.json, plus where the report is.

    Never raises for violations: the gate task decides what ``fail`` means in the graph.
    """
    output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].rstrip("/")
    analysis_uri = f"{output}/{clarify_container.ANALYSIS_FILE}"
    analysis = json.loads(storage.for_settings(settings).read(analysis_uri))
    verdict = apply_gate(analysis, params.get("bias_thresholds"), mode="warn")
    return bias_doc.verdict(
        analysis_uri=analysis_uri,
        report_uri=f"{output}/{clarify_container.REPORT_NAME}.html",
        violations=verdict["violations"],
        mode=params["bias_gate_mode"],
        notes=[note] if (note := cddl_note(params)) else [],
    )
