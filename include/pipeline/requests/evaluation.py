"""The CreateProcessingJob request of the evaluation step (``include/jobs/evaluate.py``).

``code_uri`` is an S3 prefix holding evaluate.py and its sibling modules (data.py); the script
is started from there, so ``from data import …`` resolves inside the container.
"""

from __future__ import annotations

from include.pipeline.requests.common import processing_input, processing_output

PROCESSING_ROOT = "/opt/ml/processing"
MODEL_PATH = f"{PROCESSING_ROOT}/input/model"
TEST_PATH = f"{PROCESSING_ROOT}/input/data"
CODE_PATH = f"{PROCESSING_ROOT}/input/code"
EVALUATION_PATH = f"{PROCESSING_ROOT}/output/evaluation"
ENTRY_POINT = "evaluate.py"
EVALUATION_OUTPUT = "evaluation"


def evaluation_job_request(
    *,
    job_name: str,
    role_arn: str,
    region: str,
    image_uri: str,
    code_uri: str,
    model_uri: str,
    test_uri: str,
    output_uri: str,
    instance_type: str,
    max_runtime_s: int = 3600,
) -> dict:
    """CreateProcessingJob keyword arguments: model.tar.gz + test split -> evaluation.json + PNG."""
    return {
        "ProcessingJobName": job_name,
        "RoleArn": role_arn,
        "AppSpecification": {
            "ImageUri": image_uri,
            "ContainerEntrypoint": ["python3", f"{CODE_PATH}/{ENTRY_POINT}"],
            "ContainerArguments": [
                "--model_path",
                MODEL_PATH,
                "--test_path",
                TEST_PATH,
                "--output_dir",
                EVALUATION_PATH,
            ],
        },
        "ProcessingInputs": [
            processing_input("model", model_uri, MODEL_PATH),
            processing_input("test", test_uri, TEST_PATH),
            processing_input("code", code_uri, CODE_PATH),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [processing_output(EVALUATION_OUTPUT, output_uri, EVALUATION_PATH)]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": instance_type,
                "VolumeSizeInGB": 30,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_s},
        "Environment": {"AWS_DEFAULT_REGION": region},
    }
