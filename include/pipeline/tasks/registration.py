"""The registration step's Airflow-side glue: the register operator's arguments from upstream
results (model, evaluation, bias report, lineage)."""

from __future__ import annotations

from include.pipeline.requests import deployment, registry
from include.pipeline.settings import Settings
from include.pipeline.tasks import training

MODEL_NAME = "reviews-sentiment"


def evaluation_uri(evaluated: dict) -> str:
    outputs = evaluated["Processing"]["ProcessingOutputConfig"]["Outputs"]
    (uri,) = [o["S3Output"]["S3Uri"] for o in outputs if o["OutputName"] == "evaluation"]
    return f"{uri.rstrip('/')}/evaluation.json"


def kwargs(
    settings: Settings,
    params: dict,
    *,
    run_id: str,
    ingested: dict,
    trained: dict,
    evaluation_uri: str,
    bias: dict | None,
) -> dict:
    """SageMakerRegisterModelVersionOperator's arguments, XCom-safe (approval as text)."""
    job = trained["Training"]
    result = registry.register_model_version_kwargs(
        model_name=MODEL_NAME,
        image_uri=deployment.inference_image(settings.region),
        model_url=job["ModelArtifacts"]["S3ModelArtifacts"],
        evaluation_uri=evaluation_uri,
        bias_report_uri=(bias or {}).get("analysis_uri"),
        data_hash=ingested["raw_hash"],
        hyperparameters=training.hyperparameters(settings, params),
        image_uris={"training": job["AlgorithmSpecification"]["TrainingImage"]},
        model_approval=params["model_approval"],
        description=f"{MODEL_NAME} trained by run {run_id}",
    )
    result["model_approval"] = result["model_approval"].value
    return result
