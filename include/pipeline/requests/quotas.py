"""The SageMaker quotas a run of the main DAG needs: instance type and count per job kind.

New accounts start with low or zero quotas for many instance types, and a run that meets one
fails an hour in, after paying for what ran before it. These are the names Service Quotas lists
for SageMaker (``<instance type> for <kind> usage``), with the most instances the run holds at
once; the aws target compares them with the account's quotas before anything starts.
"""

from __future__ import annotations

from include.pipeline.requests import images

SERVICE_CODE = "sagemaker"
CLARIFY_INSTANCE = "ml.m5.xlarge"  # requests.bias.bias_job_request's default
TRANSFORM_INSTANCE = "ml.m5.xlarge"  # requests.transform.transform_job_request's default
# Clarify jobs at once: the raw and balanced pre-training reports, then one post-training report
# per candidate, which overlap with the others' evaluations.
MAX_CLARIFY_AT_ONCE = 4
# Deployment strategies that put the new model beside the serving one (two variants).
TWO_VARIANT_STRATEGIES = ("shadow", "ab")


def quota_name(instance_type: str, usage: str) -> str:
    """Service Quotas' name of a SageMaker instance quota, e.g. ``ml.m5.xlarge for endpoint
    usage``."""
    return f"{instance_type} for {usage} usage"


def needed(params: dict, candidate_quotas: list[tuple[str, str]]) -> dict[str, int]:
    """``{quota name: instances the run holds at once}`` for a run with ``params``;
    ``candidate_quotas``: the (instance type, usage) of each of its candidates' own jobs (their
    kinds declare them: :func:`include.pipeline.candidates.quotas`)."""
    candidates = list(params.get("candidates") or [])
    needs: dict[str, int] = {}

    def need(instance_type: str, usage: str, count: int) -> None:
        name = quota_name(instance_type, usage)
        needs[name] = needs.get(name, 0) + count

    # the prepare job, then one evaluation per candidate (in parallel), the monitoring baseline
    need(images.PROCESSING_INSTANCE, "processing job", max(1, len(candidates)))
    need(CLARIFY_INSTANCE, "processing job", min(MAX_CLARIFY_AT_ONCE, 2 + len(candidates)))
    for instance_type, usage in candidate_quotas:
        need(instance_type, usage, 1)
    variants = 2 if params.get("deployment_strategy") in TWO_VARIANT_STRATEGIES else 1
    # blue/green updates run the old and the new fleet side by side until the update ends
    need(images.INFERENCE_INSTANCE, "endpoint", 2 * variants)
    return needs
