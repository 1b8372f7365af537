"""The CreateProcessingJob request of the text candidates' data step (``include/jobs/prepare_text.py``).

Its inputs are the fine-tune's own training-set splits (the offline store's query results), so
every candidate learns from and is tested on the same rows; its output prefix holds
``blazingtext/<split>/`` (BlazingText's channels), ``automl/<split>/`` (Autopilot's CSV) and
``automl-inference/<split>/`` (the same rows' text, to score with Autopilot's model).
"""

from __future__ import annotations

from include.pipeline.requests.common import (
    PROCESSING_ROOT,
    processing_input,
    processing_output,
    script_step_request,
)

ENTRY_POINT = "prepare_text.py"
INPUT_PATH = f"{PROCESSING_ROOT}/input/data"
OUTPUT_PATH = f"{PROCESSING_ROOT}/output/text"
OUTPUT_NAME = "text"
# Folders of the output prefix (prepare_text.write_split's layout).
BLAZINGTEXT_FOLDER = "blazingtext"
AUTOML_FOLDER = "automl"
AUTOML_INFERENCE_FOLDER = "automl-inference"  # the text alone: a batch transform's input


def text_preparation_request(*, split_uris: dict[str, str], output_uri: str, **job) -> dict:
    """CreateProcessingJob keyword arguments: each split's folder -> label lines and CSV.

    ``job``: :func:`script_step_request`'s (job_name, role_arn, region, image_uri, code_uri,
    instance_type, max_runtime_s)."""
    if not split_uris:
        raise ValueError("text preparation needs at least one split")
    return script_step_request(
        entry_point=ENTRY_POINT,
        arguments=[
            "--input-data",
            INPUT_PATH,
            "--output-data",
            OUTPUT_PATH,
            "--splits",
            ",".join(split_uris),
        ],  # fmt: skip
        inputs=[
            processing_input(split, uri, f"{INPUT_PATH}/{split}")
            for split, uri in split_uris.items()
        ],
        outputs=[processing_output(OUTPUT_NAME, output_uri, OUTPUT_PATH)],
        **job,
    )
