"""Validate request dicts against botocore's service model: the shape AWS would accept."""

from __future__ import annotations

import botocore.session
from botocore.validate import ParamValidator

_session = botocore.session.get_session()


def assert_valid(service: str, operation: str, params: dict) -> None:
    """Fail with botocore's own report when ``params`` is not a valid ``operation`` request."""
    model = _session.get_service_model(service).operation_model(operation)
    report = ParamValidator().validate(params, model.input_shape)
    assert not report.has_errors(), f"{service}.{operation}: {report.generate_report()}"


def assert_valid_response(service: str, operation: str, response: dict) -> None:
    """Fail when ``response`` (less ``ResponseMetadata``) is not in ``operation``'s output shape:
    a local client must answer what boto3 would hand back."""
    model = _session.get_service_model(service).operation_model(operation)
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    report = ParamValidator().validate(body, model.output_shape)
    assert not report.has_errors(), f"{service}.{operation} response: {report.generate_report()}"
