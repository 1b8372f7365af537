"""Batch transform request: score every file under an S3 prefix with a deployed model.

Sent by ``SageMakerTransformOperator`` on ``aws``; executed from the same dict by
:func:`include.pipeline.targets.local.sagemaker.transform.run_transform_job` locally.
"""

from __future__ import annotations

from include.pipeline.requests import network
from include.pipeline.requests.common import with_optional

SPLIT_TYPES = ("None", "Line")
BATCH_STRATEGIES = ("MultiRecord", "SingleRecord")
DEFAULT_MAX_PAYLOAD_MB = 6  # SageMaker's default, and the real-time endpoint's request limit


def transform_job_request(
    *,
    job_name: str,
    model_name: str,
    input_uri: str,
    output_uri: str,
    instance_type: str = "ml.m5.xlarge",
    instance_count: int = 1,
    content_type: str = "application/jsonlines",
    accept: str | None = None,
    split_type: str = "Line",
    max_payload_mb: int = DEFAULT_MAX_PAYLOAD_MB,
    batch_strategy: str = "MultiRecord",
    max_concurrent_transforms: int = 1,
    tags: dict[str, str] | None = None,
    settings=None,
) -> dict:
    """CreateTransformJob over every object under ``input_uri``; outputs ``<name>.out`` files.

    With ``split_type="Line"`` records are lines; ``MultiRecord`` packs as many lines as fit in
    ``max_payload_mb`` into one request, and ``AssembleWith=Line`` joins the answers by line, so
    output line *i* answers input line *i*. ``settings``: the job's keys (:mod:`network`).
    """
    if split_type not in SPLIT_TYPES:
        raise ValueError(f"split_type={split_type!r} is not one of {SPLIT_TYPES}")
    if batch_strategy not in BATCH_STRATEGIES:
        raise ValueError(f"batch_strategy={batch_strategy!r} is not one of {BATCH_STRATEGIES}")
    if not 0 <= max_payload_mb <= 100:
        raise ValueError(f"max_payload_mb={max_payload_mb!r} must be within [0, 100]")
    for name, uri in (("input_uri", input_uri), ("output_uri", output_uri)):
        if not uri.startswith("s3://"):
            raise ValueError(f"{name}={uri!r} must be an s3:// URI")
    if instance_count < 1:
        raise ValueError(f"instance_count={instance_count!r} must be >= 1")
    request: dict = {
        "TransformJobName": job_name,
        "ModelName": model_name,
        "MaxConcurrentTransforms": int(max_concurrent_transforms),
        "MaxPayloadInMB": int(max_payload_mb),
        "BatchStrategy": batch_strategy,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": content_type,
            "SplitType": split_type,
        },
        "TransformOutput": {
            "S3OutputPath": output_uri,
            "Accept": accept or content_type,
            "AssembleWith": "Line" if split_type == "Line" else "None",
        },
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": int(instance_count)},
    }
    return network.transform(with_optional(request, tags=tags), settings)
