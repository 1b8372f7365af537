"""Record every AWS API call a process makes (botocore and aiobotocore clients alike).

``record_to(path)`` appends one JSON line ``[service, operation]`` per call; the aws end-to-end
test runs the DAG with it and checks each action against the IAM policies in ``deploy/iam/``.
"""

from __future__ import annotations

import inspect
import json
import threading

_lock = threading.Lock()


def record_to(path: str) -> None:
    import botocore.client

    def record(client, operation: str) -> None:
        line = json.dumps([client.meta.service_model.service_name, operation])
        with _lock, open(path, "a") as fh:
            fh.write(line + "\n")

    def wrap(cls) -> None:
        original = cls._make_api_call
        if inspect.iscoroutinefunction(original):

            async def call(self, operation_name, api_params):
                record(self, operation_name)
                return await original(self, operation_name, api_params)
        else:

            def call(self, operation_name, api_params):
                record(self, operation_name)
                return original(self, operation_name, api_params)

        cls._make_api_call = call

    wrap(botocore.client.BaseClient)
    try:
        import aiobotocore.client
    except ImportError:
        return
    wrap(aiobotocore.client.AioBaseClient)


def read(path) -> set[tuple[str, str]]:
    """The distinct (service, operation) pairs recorded at ``path``."""
    with open(path) as fh:
        return {tuple(json.loads(line)) for line in fh if line.strip()}
