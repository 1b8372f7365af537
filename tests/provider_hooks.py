"""What the Amazon provider's hooks send to AWS for an operator's arguments, caught before boto3."""

from __future__ import annotations


def create_auto_ml_job_sends(arguments: dict) -> dict:
    """The CreateAutoMLJob request ``SageMakerHook.create_auto_ml_job`` rebuilds from
    ``arguments`` (what SageMakerAutoMLOperator passes it)."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    sent: dict = {}

    class Conn:
        def create_auto_ml_job(self, **kwargs):
            sent.update(kwargs)

    hook = SageMakerHook.__new__(SageMakerHook)
    hook.__dict__["conn"] = Conn()
    SageMakerHook.create_auto_ml_job(hook, **arguments)
    return sent
