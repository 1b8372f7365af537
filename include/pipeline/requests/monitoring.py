"""Data-quality monitoring requests: the baseline and monitoring processing jobs
(``include/jobs/monitor.py``), and the managed Model Monitor option.

Default, both targets: two CreateProcessingJob requests. The baseline job reads the dataset less
the rows the model trained on, in the dataset's sentiment mix, and the model archive (it scores the split as the endpoint would answer) and writes Model
Monitor's ``statistics.json`` / ``constraints.json`` plus ``vocabulary.json``; the monitoring job
reads one window of data capture (one input per variant and hour folder) and the baseline, and
writes ``statistics.json`` / ``constraint_violations.json``.

Option (accounts that still have Model Monitor): CreateDataQualityJobDefinition +
CreateMonitoringSchedule over the same baseline documents; Model Monitor's analyzer then writes
the same documents under the schedule's output prefix.
"""

from __future__ import annotations

import json

from include.pipeline.requests import network
from include.pipeline.requests.common import (
    MAX_PROCESSING_INPUTS,
    PROCESSING_ROOT,
    cluster_config,
    processing_input,
    processing_output,
    script_step_request,
)

DATASET_PATH = f"{PROCESSING_ROOT}/input/dataset"
MODEL_PATH = f"{PROCESSING_ROOT}/input/model"
EXCLUDE_PATH = f"{PROCESSING_ROOT}/input/exclude"
BASELINE_PATH = f"{PROCESSING_ROOT}/input/baseline"
OUTPUT_PATH = f"{PROCESSING_ROOT}/output/report"
ENTRY_POINT = "monitor.py"
BASELINE_OUTPUT = "baseline"
REPORT_OUTPUT = "report"


def _job(*, output_name: str, output_uri: str, **job) -> dict:
    """monitor.py's processing job: one output, the report folder. The two requests below pass
    their job arguments (``**job``) through to :func:`script_step_request`."""
    return script_step_request(
        entry_point=ENTRY_POINT,
        outputs=[processing_output(output_name, output_uri, OUTPUT_PATH)],
        **job,
    )


# Held-out reviews the baseline job scores. The drift check's power is bounded by the window:
# the KS critical value against a 50-record window is 0.202 with 500 baseline rows, 0.197 with
# 1,000 and 0.195 with 2,000, while each 500 reviews scored cost 9 s on a 2-core AVX2 machine.
BASELINE_MAX_ROWS = 500


def baseline_job_request(
    *,
    dataset_uri: str,
    model_uri: str,
    max_rows: int = BASELINE_MAX_ROWS,
    with_category: bool = False,
    monitoring_config: dict | None = None,
    exclude_uris: dict[str, str] | None = None,
    **job,
) -> dict:
    """CreateProcessingJob: dataset + model.tar.gz -> the baseline documents. ``exclude_uris``
    (split name -> URI: the splits the model trained on) are left out of the dataset, and the
    rest is drawn in the dataset's sentiment mix (``monitor.held_out_sample``)."""
    arguments = [
        "--mode", "baseline",
        "--dataset-format", "split",
        "--dataset", DATASET_PATH,
        "--model", MODEL_PATH,
        "--output", OUTPUT_PATH,
        "--max-rows", str(max_rows),
        "--with-category", str(with_category).lower(),
    ]  # fmt: skip
    if monitoring_config:
        arguments += ["--monitoring-config", json.dumps(monitoring_config, sort_keys=True)]
    if exclude_uris:
        arguments += ["--exclude", EXCLUDE_PATH]
    return _job(
        arguments=arguments,
        inputs=[
            processing_input("dataset", dataset_uri, DATASET_PATH),
            processing_input("model", model_uri, MODEL_PATH),
            *(
                processing_input(f"exclude-{name}", uri, f"{EXCLUDE_PATH}/{name}")
                for name, uri in sorted((exclude_uris or {}).items())
            ),
        ],
        output_name=BASELINE_OUTPUT,
        network_job="monitor-baseline",
        **job,
    )


def monitoring_job_request(
    *, job_name: str, capture_uris: list[str], baseline_uri: str, min_records: int, **job
) -> dict:
    """CreateProcessingJob: one window's capture prefixes + the baseline -> the window's report.

    Each capture prefix (one variant's hour folder) lands in its own folder under the dataset
    path; the job reads every ``*.jsonl`` below it."""
    if not capture_uris:
        raise ValueError(f"{job_name}: no captured traffic to monitor")
    if len(capture_uris) + 2 > MAX_PROCESSING_INPUTS:
        raise ValueError(
            f"{job_name}: {len(capture_uris)} capture prefixes; at most {MAX_PROCESSING_INPUTS - 2} fit "
            "one job (shorten the window)"
        )
    return _job(
        job_name=job_name,
        arguments=[
            "--mode",
            "monitor",
            "--dataset-format",
            "capture",
            "--dataset",
            DATASET_PATH,
            "--baseline",
            BASELINE_PATH,
            "--output",
            OUTPUT_PATH,
            "--min-records",
            str(min_records),
        ],  # fmt: skip
        inputs=[
            *(
                processing_input(f"capture-{i}", uri, f"{DATASET_PATH}/{i}")
                for i, uri in enumerate(capture_uris)
            ),
            processing_input("baseline", baseline_uri, BASELINE_PATH),
        ],
        output_name=REPORT_OUTPUT,
        **job,
    )


# ---------------------------------------------------------------- managed Model Monitor option


def data_quality_job_definition_request(
    *,
    name: str,
    role_arn: str,
    analyzer_image_uri: str,
    endpoint_name: str,
    baseline_uri: str,
    output_uri: str,
    instance_type: str,
    max_runtime_s: int = 3600,
    settings=None,
) -> dict:
    """CreateDataQualityJobDefinition over the endpoint's capture and the baseline documents
    (``settings``: its network and encryption, :mod:`network`)."""
    base = baseline_uri.rstrip("/")
    request = {
        "JobDefinitionName": name,
        "DataQualityBaselineConfig": {
            "ConstraintsResource": {"S3Uri": f"{base}/constraints.json"},
            "StatisticsResource": {"S3Uri": f"{base}/statistics.json"},
        },
        "DataQualityAppSpecification": {"ImageUri": analyzer_image_uri},
        "DataQualityJobInput": {
            "EndpointInput": {
                "EndpointName": endpoint_name,
                "LocalPath": f"{PROCESSING_ROOT}/input/endpoint",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "DataQualityJobOutputConfig": {
            "MonitoringOutputs": [
                {
                    "S3Output": {
                        "S3Uri": output_uri,
                        "LocalPath": f"{PROCESSING_ROOT}/resultdata",
                        "S3UploadMode": "EndOfJob",
                    }
                }
            ]
        },
        "JobResources": {"ClusterConfig": cluster_config(instance_type)},
        "RoleArn": role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_s},
    }
    return network.monitoring_job_definition(request, settings)


def monitoring_schedule_request(
    *, name: str, job_definition_name: str, cron: str = "cron(0 * ? * * *)"
) -> dict:
    """CreateMonitoringSchedule running the data-quality job definition (hourly by default)."""
    return {
        "MonitoringScheduleName": name,
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": cron},
            "MonitoringJobDefinitionName": job_definition_name,
            "MonitoringType": "DataQuality",
        },
    }
