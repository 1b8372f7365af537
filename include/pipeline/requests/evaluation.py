"""The CreateProcessingJob request of the evaluation step (``include/jobs/evaluate.py``).

``code_uri`` is an S3 prefix holding evaluate.py and its sibling modules (data.py); the script
is started from there, so ``from data import …`` resolves inside the container.
"""

from __future__ import annotations

from include.jobs.documents import DEFAULT_MODEL_KIND, MODEL_KINDS
from include.pipeline.requests.common import (
    PROCESSING_ROOT,
    processing_input,
    processing_output,
    script_step_request,
)

MODEL_PATH = f"{PROCESSING_ROOT}/input/model"
PREDICTIONS_PATH = f"{PROCESSING_ROOT}/input/predictions"
TEST_PATH = f"{PROCESSING_ROOT}/input/data"
EVALUATION_PATH = f"{PROCESSING_ROOT}/output/evaluation"
ENTRY_POINT = "evaluate.py"
EVALUATION_OUTPUT = "evaluation"


def evaluation_job_request(
    *,
    model_uri: str | None,
    test_uri: str,
    output_uri: str,
    model_kind: str,
    predictions_uri: str | None = None,
    **job,
) -> dict:
    """CreateProcessingJob keyword arguments: model.tar.gz + test split -> evaluation.json + PNG.

    ``model_kind`` is the candidate that made the archive (evaluate.py's ``--model_kind``);
    ``predictions_uri`` instead of ``model_uri``: a batch transform's output over the test split,
    scored without loading a model (evaluate.py's ``--predictions_path``);
    ``job``: :func:`script_step_request`'s (job_name, role_arn, region, image_uri, code_uri,
    instance_type, max_runtime_s)."""
    if model_kind not in MODEL_KINDS:
        raise ValueError(f"model kind {model_kind!r} is not one of {MODEL_KINDS}")
    kind = [] if model_kind == DEFAULT_MODEL_KIND else ["--model_kind", model_kind]
    if model_uri is not None and predictions_uri is None:
        source = ["--model_path", MODEL_PATH]
        first = processing_input("model", model_uri, MODEL_PATH)
    elif predictions_uri is not None and model_uri is None:
        source = ["--predictions_path", PREDICTIONS_PATH]
        first = processing_input("predictions", predictions_uri, PREDICTIONS_PATH)
    else:
        raise ValueError("the evaluation takes either a model_uri or a predictions_uri")
    return script_step_request(
        entry_point=ENTRY_POINT,
        arguments=[
            *source,
            "--test_path",
            TEST_PATH,
            "--output_dir",
            EVALUATION_PATH,
            *kind,
        ],  # fmt: skip
        inputs=[first, processing_input("test", test_uri, TEST_PATH)],
        outputs=[processing_output(EVALUATION_OUTPUT, output_uri, EVALUATION_PATH)],
        **job,
    )
