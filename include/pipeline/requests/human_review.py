"""The Amazon A2I option of the human-review loop: worker UI, flow definition, human loops.

The default reviewer UI on both targets is Airflow's own human-in-the-loop operators (Amazon A2I
is closed to new customers); accounts that have A2I can send each review task as a human loop
instead. These builders make the requests (boto3 keyword arguments): CreateHumanTaskUi and
CreateFlowDefinition once, StartHumanLoop per review (``sagemaker-a2i-runtime``), and the key of
the answer A2I writes under the flow's output prefix.
"""

from __future__ import annotations

import json
import re

from include.pipeline.core.names import short_hash
from include.pipeline.requests import network

LABEL_OPTIONS = ("-1", "0", "1")
_NAME = re.compile(r"^[a-z0-9](-*[a-z0-9])*$")
# crowd-classifier with the review, the model's label and probability; the answer is the
# category the reviewer picks (one of LABEL_OPTIONS).
TASK_TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-classifier name="sentiment" categories="['-1', '0', '1']"
      header="What is the sentiment of this review?">
    <classification-target>
      <p>{{ task.input.review_text }}</p>
      <p>Model: {{ task.input.predicted_label }} (probability {{ task.input.probability }})</p>
    </classification-target>
    <full-instructions header="Sentiment">-1 negative, 0 neutral, 1 positive.</full-instructions>
    <short-instructions>Pick the sentiment the text expresses.</short-instructions>
  </crowd-classifier>
</crowd-form>"""


def _name(kind: str, value: str) -> str:
    """A2I names: lowercase letters, digits and hyphens, at most 63 characters."""
    if len(value) > 63 or not _NAME.match(value):
        raise ValueError(f"{kind} {value!r}: lowercase letters, digits, hyphens, <= 63 characters")
    return value


def human_task_ui_request(*, name: str) -> dict:
    return {
        "HumanTaskUiName": _name("HumanTaskUiName", name),
        "UiTemplate": {"Content": TASK_TEMPLATE},
    }


def flow_definition_request(
    *,
    name: str,
    role_arn: str,
    human_task_ui_arn: str,
    workteam_arn: str,
    output_uri: str,
    timeout_s: int = 24 * 3600,
    settings=None,
) -> dict:
    """CreateFlowDefinition: one worker per review, answers under ``output_uri`` (``settings``:
    their key, :mod:`network`)."""
    request = {
        "FlowDefinitionName": _name("FlowDefinitionName", name),
        "HumanLoopConfig": {
            "WorkteamArn": workteam_arn,
            "HumanTaskUiArn": human_task_ui_arn,
            "TaskTitle": "Review sentiment",
            "TaskDescription": "Label the sentiment of a product review (-1, 0, 1)",
            "TaskCount": 1,
            "TaskAvailabilityLifetimeInSeconds": timeout_s,
            "TaskTimeLimitInSeconds": 300,
        },
        "OutputConfig": {"S3OutputPath": output_uri},
        "RoleArn": role_arn,
    }
    return network.flow_definition(request, settings)


def human_loop_name(review_id: str) -> str:
    """One loop per review, named from its id (a re-run starts no second loop)."""
    return f"review-{short_hash(review_id, length=16)}"


def start_human_loop_request(*, flow_definition_arn: str, review: dict) -> dict:
    """StartHumanLoop for one review task (:mod:`include.pipeline.tasks.human_review`)."""
    return {
        "HumanLoopName": human_loop_name(review["review_id"]),
        "FlowDefinitionArn": flow_definition_arn,
        "HumanLoopInput": {
            "InputContent": json.dumps(
                {
                    "review_id": review["review_id"],
                    "review_text": review["text"],
                    "predicted_label": review["predicted_label"],
                    "probability": review["probability"],
                },
                sort_keys=True,
            )
        },
    }


def answer_from_output(output: dict) -> tuple[int | None, str]:
    """``(label, worker id)`` from A2I's output.json (``humanAnswers[0].answerContent``)."""
    answers = output.get("humanAnswers") or []
    if not answers:
        return None, ""
    first = answers[0]
    content = first.get("answerContent") or {}
    picked = (content.get("sentiment") or {}).get("label")
    worker = str(first.get("workerId", ""))
    return (int(picked), worker) if picked in LABEL_OPTIONS else (None, worker)
