"""boto3's contract for the local clients: the request checked against botocore's service model,
refusals raised as the ``ClientError`` boto3 raises, responses with ``ResponseMetadata``."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any


@cache
def _operation_model(service: str, operation: str):
    import botocore.session

    return botocore.session.get_session().get_service_model(service).operation_model(operation)


def client_error(operation: str, message: str, code: str = "ValidationException"):
    from botocore.exceptions import ClientError

    error = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(error, operation)


def call(
    service: str, operation: str, request: dict, answer: Callable[[dict], dict | None]
) -> dict[str, Any]:
    """``answer(request)`` after botocore's validation, with boto3's error and response shapes.

    ``ValueError`` from the engine (its ``ValidationException``) becomes a ``ClientError``.
    """
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(request, _operation_model(service, operation).input_shape)
    if report.has_errors():
        raise client_error(operation, report.generate_report())
    try:
        response = answer(request) or {}
    except ValueError as err:
        raise client_error(operation, str(err)) from err
    return {**response, "ResponseMetadata": {"HTTPStatusCode": 200, "RetryAttempts": 0}}
