"""The Autopilot request (course part 1): CreateAutoMLJob over the prepared reviews CSV.

V1 ``CreateAutoMLJob``, not ``CreateAutoMLJobV2``: it is what the Amazon provider's
``SageMakerAutoMLOperator`` sends and ``SageMakerAutoMLSensor`` watches (a sensor, no polling
loop of ours), V1 stays supported, and the tabular problem here needs nothing V2 adds. The local
AutoML engine (:mod:`include.pipeline.targets.local.sagemaker.automl`) runs the same request.
"""

from __future__ import annotations

from include.pipeline.requests import network
from include.pipeline.requests.common import SHORT_JOB_NAME, check_short_job_name

TARGET_ATTRIBUTE = "sentiment"
PROBLEM_TYPE = "MulticlassClassification"
OBJECTIVE = "Accuracy"
# Autopilot reports its objective under this name (BestCandidate.FinalAutoMLJobObjectiveMetric).
OBJECTIVE_METRIC = "validation:accuracy"
MODES = ("AUTO", "ENSEMBLING", "HYPERPARAMETER_TUNING")
# What the best candidate's containers answer for text/csv (course: predicted_label,probability).
INFERENCE_KEYS = ("predicted_label", "probability")
INFERENCE_OUTPUT = ",".join(INFERENCE_KEYS)
CONTENT_TYPE = "text/csv"  # what they take (one review per row) and answer
AUTOML_JOB_NAME = SHORT_JOB_NAME
DEFAULT_BUDGET = {"max_candidates": 3, "max_job_runtime_s": 120, "max_candidate_runtime_s": 60}
# The pipeline's default job runtime per target: seconds of FLAML on 2 CPU cores (the 600-row
# sample's demo stays short), an hour of Autopilot on AWS.
PIPELINE_JOB_RUNTIME_S = {"local": 20, "aws": 3600}


def automl_job_request(
    *,
    job_name: str,
    role_arn: str,
    input_uri: str,
    output_uri: str,
    max_candidates: int = DEFAULT_BUDGET["max_candidates"],
    max_job_runtime_s: int = DEFAULT_BUDGET["max_job_runtime_s"],
    max_candidate_runtime_s: int = DEFAULT_BUDGET["max_candidate_runtime_s"],
    mode: str = "HYPERPARAMETER_TUNING",
    validation_fraction: float = 0.2,
    settings=None,
) -> dict:
    """CreateAutoMLJob keyword arguments: multiclass ``sentiment``, accuracy, a candidate and
    runtime budget. ``input_uri`` is a prefix of CSV files with a header row; ``settings``: the
    job's network and encryption (:mod:`network`)."""
    check_short_job_name("AutoML", job_name)
    if mode not in MODES:
        raise ValueError(f"AutoML mode {mode!r}; expected one of {MODES}")
    if max_candidates < 1:
        raise ValueError(f"max_candidates must be at least 1, got {max_candidates}")
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    request = {
        "AutoMLJobName": job_name,
        "InputDataConfig": [
            {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
                "TargetAttributeName": TARGET_ATTRIBUTE,
                "ContentType": "text/csv;header=present",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ProblemType": PROBLEM_TYPE,
        "AutoMLJobObjective": {"MetricName": OBJECTIVE},
        "AutoMLJobConfig": {
            "CompletionCriteria": {
                "MaxCandidates": int(max_candidates),
                "MaxRuntimePerTrainingJobInSeconds": int(max_candidate_runtime_s),
                "MaxAutoMLJobRuntimeInSeconds": int(max_job_runtime_s),
            },
            "DataSplitConfig": {"ValidationFraction": float(validation_fraction)},
            "Mode": mode,
        },
        "RoleArn": role_arn,
    }
    return network.automl(request, settings)


# The arguments operator_arguments gives SageMakerAutoMLOperator through XCom (template fields).
OPERATOR_ARGUMENTS = ("job_name", "s3_input", "target_attribute", "s3_output", "role_arn", "extras")


def operator_arguments(request: dict) -> dict:
    """The request as ``SageMakerAutoMLOperator``'s arguments (it rebuilds CreateAutoMLJob from
    them; ``extras`` carries every key it has no argument for). Waiting is the sensor's job."""
    source = request["InputDataConfig"][0]
    named = {"AutoMLJobName", "InputDataConfig", "OutputDataConfig", "RoleArn"}
    return {
        "job_name": request["AutoMLJobName"],
        "s3_input": source["DataSource"]["S3DataSource"]["S3Uri"],
        "target_attribute": source["TargetAttributeName"],
        "s3_output": request["OutputDataConfig"]["S3OutputPath"],
        "role_arn": request["RoleArn"],
        "extras": {
            **{k: v for k, v in request.items() if k not in named},
            "InputDataConfig": request["InputDataConfig"],
            # whole, so its KmsKeyId survives the hook's rebuild from s3_output
            "OutputDataConfig": request["OutputDataConfig"],
        },
        "wait_for_completion": False,
    }


def inference_containers(containers: list[dict], keys=INFERENCE_KEYS) -> list[dict]:
    """A candidate's ``InferenceContainers`` set to answer ``keys``, as the SageMaker SDK's
    ``AutoML.create_model(inference_response_keys=...)`` sets them: each container that lists
    ``SAGEMAKER_INFERENCE_SUPPORTED`` emits the keys it supports (``SAGEMAKER_INFERENCE_OUTPUT``)
    and takes what the one before it emits (``SAGEMAKER_INFERENCE_INPUT``); the last one must
    support them all."""
    if not containers:
        raise ValueError("the AutoML candidate has no InferenceContainers")

    def supported(container: dict) -> list[str]:
        listed = (container.get("Environment") or {}).get("SAGEMAKER_INFERENCE_SUPPORTED", "")
        return [k.strip() for k in listed.split(",") if k.strip()]

    missing = [k for k in keys if k not in supported(containers[-1])]
    if missing:
        raise ValueError(
            f"the candidate's last inference container does not answer {missing} "
            f"(SAGEMAKER_INFERENCE_SUPPORTED: {supported(containers[-1])})"
        )
    out, previous = [], None
    for container in containers:
        environment = dict(container.get("Environment") or {})
        emitted = ",".join(k for k in keys if k in supported(container)) or None
        if emitted and previous:
            environment["SAGEMAKER_INFERENCE_INPUT"] = previous
        if emitted:
            environment["SAGEMAKER_INFERENCE_OUTPUT"] = emitted
        previous = emitted
        out.append(
            {
                "Image": container["Image"],
                "ModelDataUrl": container["ModelDataUrl"],
                "Environment": environment,
            }
        )
    return out


def candidate_model_request(
    *, model_name: str, role_arn: str, candidate: dict, settings=None
) -> dict:
    """CreateModel of an AutoML candidate (``BestCandidate`` of DescribeAutoMLJob): its
    inference containers in order, a serial inference pipeline answering ``INFERENCE_OUTPUT``
    (``settings``: the model's network, :mod:`network`)."""
    request = {
        "ModelName": model_name,
        "ExecutionRoleArn": role_arn,
        "Containers": inference_containers(candidate["InferenceContainers"]),
    }
    return network.model(request, settings, "autopilot-model")
