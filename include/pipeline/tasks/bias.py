"""The pre-training bias step's Airflow-side glue: upload the analysis config, build the Clarify
request, and read the result back for the gate and the run summary."""

from __future__ import annotations

import json

from include.pipeline import bias_gate, storage
from include.pipeline import schema as S
from include.pipeline.requests import bias
from include.pipeline.requests.common import job_name
from include.pipeline.settings import Settings

DATASET_HEADERS = [name for name, _ in S.TRANSFORMED_COLUMNS]


def build_request(
    settings: Settings,
    params: dict,
    *,
    run_id: str,
    dataset_uri: str,
    stage: str = "raw",
    headers: list[str] = DATASET_HEADERS,
) -> dict:
    """Upload analysis_config.json for ``stage`` and return the Clarify CreateProcessingJob."""
    config = bias.analysis_config(params, headers)
    config_uri = settings.run_uri(run_id, "bias", stage, "config", bias.CONFIG_FILE)
    storage.for_settings(settings).write(config_uri, json.dumps(config, indent=2).encode())
    return bias.bias_job_request(
        job_name=job_name(f"bias-{stage}", run_id),
        role_arn=settings.role_arn,
        region=settings.region,
        config_uri=config_uri,
        dataset_uri=dataset_uri,
        output_uri=settings.run_uri(run_id, "bias", stage, "report"),
    )


def result(settings: Settings, request: dict, params: dict) -> dict:
    """The gate's verdict over the job's analysis.json, plus where the report is.

    Never raises for violations: the gate task decides what ``fail`` means in the graph.
    """
    output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].rstrip("/")
    analysis_uri = f"{output}/{bias.ANALYSIS_FILE}"
    analysis = json.loads(storage.for_settings(settings).read(analysis_uri))
    verdict = bias_gate.apply_gate(analysis, params.get("bias_thresholds"), mode="warn")
    return {
        "analysis_uri": analysis_uri,
        "report_uri": f"{output}/{bias.REPORT_NAME}.html",
        "violations": verdict["violations"],
        "passed": verdict["passed"],
        "mode": params["bias_gate_mode"],
    }


# Columns of the prepare job's balanced CSV (``sentiment-balanced`` output).
BALANCED_HEADERS = ["sentiment", "review_body", "product_category"]
