"""The registry step's Airflow-side glue: the register operator's arguments from upstream
results (model, evaluation, bias report, lineage), with the code version resolved here, once,
so the request builder (:mod:`include.pipeline.requests.registry`) stays pure."""

from __future__ import annotations

import functools
import re
import subprocess

from include.pipeline.requests import registry
from include.pipeline.settings import REPO_ROOT, Settings
from include.pipeline.settings import load as load_settings

MODEL_NAME = "reviews-sentiment"


def code_version(settings: Settings | None = None) -> str:
    """The git commit the code was built from; ``PIPELINE_CODE_VERSION`` wins (MWAA, images,
    where there is no checkout)."""
    return (settings or load_settings()).code_version or _git_commit()


@functools.cache
def _git_commit() -> str:
    """``git rev-parse HEAD`` of the checkout, once per process; "unknown" without git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{7,64}", sha) else "unknown"


def run_split(params: dict) -> dict[str, str]:
    """The split this run's prepare job assigns (the job's seed, the Params' fractions), as the
    registry's lineage entries."""
    from include.jobs.feature_records import SPLIT_SEED

    fractions = {name: params[f"{name}_split_percentage"] for name in registry.SPLITS}
    return registry.split_lineage(SPLIT_SEED, fractions)


def registration_arguments(
    settings: Settings,
    params: dict,
    *,
    run_id: str,
    ingested: dict,
    model: dict,
    evaluation_uri: str,
    bias: dict | None,
) -> dict:
    """SageMakerRegisterModelVersionOperator's arguments, XCom-safe (approval as text).

    ``model`` is a leaderboard entry (:class:`include.pipeline.documents.leaderboard.Entry`):
    the candidate's archive, inference image and environment, training image and
    hyperparameters."""
    result = registry.register_model_version_kwargs(
        model_name=MODEL_NAME,
        image_uri=model["image_uri"],
        model_url=model["model_uri"],
        evaluation_uri=evaluation_uri,
        bias_report_uri=(bias or {}).get("analysis_uri"),
        data_hash=ingested["raw_hash"],
        hyperparameters=model["hyperparameters"],
        code_version=code_version(settings),
        image_uris={"training": model["training_image"]},
        model_approval=params["model_approval"],
        description=f"{MODEL_NAME} ({model['candidate']}) trained by run {run_id}",
        environment=model["environment"],
        content_type=model["content_type"],
        containers=model.get("containers") or None,
        split=run_split(params),
    )
    result["model_approval"] = result["model_approval"].value
    return result
