"""Record every AWS API call a process makes (botocore and aiobotocore clients alike).

``record_to(path)`` appends one JSON line ``[service, operation, params, region]`` per call; the
aws end-to-end test runs the DAG with it and evaluates each call, with the resources its
parameters name, against the IAM policies in ``deploy/iam/``.
"""

from __future__ import annotations

import inspect
import json
import threading
from typing import NamedTuple

_lock = threading.Lock()


class Call(NamedTuple):
    service: str  # botocore's service name
    operation: str
    params: dict  # the request's parameters (bodies and streams left out)
    region: str


def _plain(value):
    """``value`` as JSON can hold it: payloads (bytes, streams) become None, the rest is kept."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return None


def record_to(path: str) -> None:
    import botocore.client

    def record(client, operation: str, params) -> None:
        meta = client.meta
        line = json.dumps(
            [meta.service_model.service_name, operation, _plain(params), meta.region_name]
        )
        with _lock, open(path, "a") as fh:
            fh.write(line + "\n")

    def wrap(cls) -> None:
        original = cls._make_api_call
        if inspect.iscoroutinefunction(original):

            async def call(self, operation_name, api_params):
                record(self, operation_name, api_params)
                return await original(self, operation_name, api_params)
        else:

            def call(self, operation_name, api_params):
                record(self, operation_name, api_params)
                return original(self, operation_name, api_params)

        cls._make_api_call = call

    wrap(botocore.client.BaseClient)
    try:
        import aiobotocore.client
    except ImportError:
        return
    wrap(aiobotocore.client.AioBaseClient)


def read_calls(path) -> list[Call]:
    """Every call recorded at ``path``, in order."""
    with open(path) as fh:
        return [Call(*json.loads(line)) for line in fh if line.strip()]


def read(path) -> set[tuple[str, str]]:
    """The distinct (service, operation) pairs recorded at ``path``."""
    return {(c.service, c.operation) for c in read_calls(path)}
