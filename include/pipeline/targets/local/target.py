"""The ``local`` target: the lake folder as S3, local twins of the operators, and local clients
with boto3's shape (the Model Registry and endpoint service as ``sagemaker``, the endpoint
service as ``sagemaker-runtime``, alarms as ``cloudwatch``)."""

from __future__ import annotations

from functools import cached_property, partial
from types import SimpleNamespace

from include.pipeline.settings import Settings


class LocalTarget:
    name = "local"
    # Autopilot's candidates are inference pipelines (the AutoML engine's three containers), as
    # on aws: a batch transform of the whole pipeline scores the test split for the evaluation.

    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def storage(self):
        from include.pipeline.targets.local.storage import LocalStorage

        return LocalStorage(self.settings.lake)

    @property
    def runtime_url(self) -> str:
        return self.settings.endpoint_url

    def client(self, service: str):
        s = self.settings
        if service == "sagemaker":
            from include.pipeline.targets.local.clients import LocalSageMakerClient

            return LocalSageMakerClient(s.lake, s.region, s.endpoint_url)
        if service == "cloudwatch":
            from include.pipeline.targets.local.cloudwatch import LocalCloudWatchClient

            return LocalCloudWatchClient(s.lake, s.region)
        if service in ("sagemaker-runtime", "application-autoscaling"):
            from include.pipeline.targets.local.endpoint import client as endpoint_client

            url = endpoint_client.ensure_server(s.lake, url=s.endpoint_url)
            return endpoint_client.client(service, url, s.region)
        raise ValueError(
            f"the local target has no {service!r} service (sagemaker, sagemaker-runtime, "
            "application-autoscaling, cloudwatch)"
        )

    def preflight(self) -> None:
        """The endpoint service for this lake, started now: a server on the port that serves
        another lake (an earlier demo's) fails the run here, not at deployment after training."""
        from include.pipeline.targets.local.endpoint import client as endpoint_client

        endpoint_client.ensure_server(self.settings.lake, url=self.settings.endpoint_url)

    def run_problems(
        self, input_uri: str, *, scheduled: bool, params: dict | None = None
    ) -> list[str]:
        """Nothing is paid for locally (no quotas); a missing input fails the ingest task at once. An
        endpoint server of another lake on the port would fail the deployment after training:
        said now, for every run (the demo's ``preflight`` says it before Airflow starts)."""
        from include.pipeline.targets.local.endpoint import client as endpoint_client

        s = self.settings
        url = s.endpoint_url
        conflict = endpoint_client.lake_conflict(endpoint_client.ping(url), url, s.lake)
        return [conflict] if conflict else []

    def endpoint_notice(self, deployment: dict) -> str:
        """How to reach the endpoint the local service keeps serving after the run: a curl in the
        request contract of the candidate it serves (its smoke test's request)."""
        import shlex

        from include.pipeline import candidates

        if not deployment.get("endpoint_name") or deployment.get("deleted_after_run"):
            return ""
        url, name = deployment["endpoint_url"], deployment["endpoint_name"]
        kind = candidates.get(deployment.get("candidate") or candidates.PRIMARY.name)
        call, _ = kind.invocation(["I love this dress"])
        body = call["Body"].rstrip("\r\n")  # one review: one line to paste (a CSV row too)
        headers = " ".join(
            f"-H {shlex.quote(f'{header}: {call[key]}')}"
            for key, header in (("ContentType", "Content-Type"), ("Accept", "Accept"))
            if key in call
        )
        return (
            f"The endpoint {name} is serving at {url} (boto3 sagemaker-runtime with "
            "endpoint_url=...). Try:\n"
            f"  curl -s -X POST {url}/endpoints/{name}/invocations {headers} "
            f"--data-binary {shlex.quote(body)}\n"
            "Stop the endpoint service with: make stop"
        )

    def arrival_trigger(
        self, incoming_uri: str, *, queue_url: str, poll_interval: float, sqs_waiter_delay: int
    ):
        """The lake folder of ``incoming_uri``, scanned every ``poll_interval`` seconds."""
        from include.pipeline.targets.local.arrival_trigger import LakeFolderTrigger

        return LakeFolderTrigger(
            folder=self.storage.location(incoming_uri),
            uri_prefix=incoming_uri,
            poll_interval=poll_interval,
        )

    def approval_trigger(self, *, queue_url: str, poll_interval: float, sqs_waiter_delay: int):
        """The folder the local registry drops its state change events in (its EventBridge
        rule and queue), scanned every ``poll_interval`` seconds."""
        from include.pipeline.targets.local.registry_events import RegistryEventTrigger
        from include.pipeline.targets.local.sagemaker.registry import events_folder

        return RegistryEventTrigger(
            folder=str(events_folder(self.settings.lake)), poll_interval=poll_interval
        )

    def operators(self) -> SimpleNamespace:
        from include.pipeline.targets import NAMES
        from include.pipeline.targets.local import operators as local

        where = {
            "lake": str(self.settings.lake),
            "region": self.settings.region,
            "endpoint_url": self.settings.endpoint_url,
        }
        return SimpleNamespace(**{name: partial(getattr(local, name), **where) for name in NAMES})
