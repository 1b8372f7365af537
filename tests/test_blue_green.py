"""Blue/green updates under concurrent traffic: broken models roll back, callers see what
SageMaker's callers would (zero failures for a healthy update, ModelErrors from a broken one)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from include.pipeline import targets
from include.pipeline.requests.deployment import rollback_alarm_request
from include.pipeline.settings import Settings
from include.pipeline.targets.local.endpoint.blue_green import traffic_steps
from include.pipeline.targets.local.endpoint.host import start_server
from tests.aws_model import assert_valid
from tests.test_endpoint_server import boto, wait_settled
from tests.test_inference import (
    BROKEN_MODEL_FN,
    BROKEN_PREDICT_FN,
    FLAKY_PREDICT_FN,
    build_tiny_model,
    register_model,
)

ALARM = "reviews-5xx-rate"


def put_alarm(lake: Path, name: str, threshold_percent: float) -> None:
    """The pipeline's rollback alarm (PutMetricAlarm through the local target's cloudwatch)."""
    request = {
        **rollback_alarm_request(endpoint_name="any", threshold_percent=threshold_percent),
        "AlarmName": name,
    }
    assert_valid("cloudwatch", "PutMetricAlarm", request)
    targets.load(Settings(lake=lake)).client("cloudwatch").put_metric_alarm(**request)


def single_variant_config(config_name: str, model: str, variant: str) -> dict:
    return {
        "EndpointConfigName": config_name,
        "ProductionVariants": [
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialInstanceCount": 2,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
    }


def update_request(
    endpoint: str, config_name: str, routing: dict, alarms: bool = True, alarm: str = ALARM
) -> dict:
    deployment = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": 600,
        }
    }
    if alarms:
        deployment["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": alarm}]}
    request = {
        "EndpointName": endpoint,
        "EndpointConfigName": config_name,
        "DeploymentConfig": deployment,
    }
    assert_valid("sagemaker", "UpdateEndpoint", request)
    return request


class Load:
    """Threads invoking the endpoint without pause; records every failure and answering variant."""

    def __init__(self, url: str, endpoint: str, threads: int = 4):
        self.url, self.endpoint = url, endpoint
        self.failures: list[str] = []
        self.variants: Counter = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, i: int) -> None:
        runtime = boto("sagemaker-runtime", self.url)
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                response = runtime.invoke_endpoint(
                    EndpointName=self.endpoint,
                    Body=f'{{"features": ["the dress {i} {n} is great"]}}',
                    ContentType="application/json",
                )
                response["Body"].read()
                with self._lock:
                    self.variants[response["InvokedProductionVariant"]] += 1
            except ClientError as err:
                with self._lock:
                    self.failures.append(str(err))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    model = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
    register_model(root, model, "blue-model")
    register_model(
        root, build_tiny_model(tmp_path_factory.mktemp("t2") / "model", seed=2), "green-model"
    )
    register_model(root, model, "broken-load", BROKEN_MODEL_FN)
    register_model(root, model, "broken-predict", BROKEN_PREDICT_FN)
    register_model(root, model, "flaky", FLAKY_PREDICT_FN)
    return root


@pytest.fixture(scope="module")
def server(lake):
    running = start_server(lake)
    put_alarm(lake, ALARM, threshold_percent=5.0)
    sm = boto("sagemaker", running.url)
    for config in (
        single_variant_config("blue", "blue-model", "Blue"),
        single_variant_config("green", "green-model", "Green"),
        single_variant_config("broken-load", "broken-load", "BrokenLoad"),
        single_variant_config("broken-predict", "broken-predict", "BrokenPredict"),
        single_variant_config("flaky", "flaky", "Flaky"),
    ):
        sm.create_endpoint_config(**config)
    yield running
    running.stop()


def fresh_endpoint(server, name: str) -> object:
    sm = boto("sagemaker", server.url)
    sm.create_endpoint(EndpointName=name, EndpointConfigName="blue")
    assert wait_settled(sm, name)["EndpointStatus"] == "InService"
    return sm


def run_update(sm, request: dict, load: Load) -> tuple[dict, list[str]]:
    """Start the update, wait for it to settle under load; returns DescribeEndpoint + statuses."""
    while sum(load.variants.values()) < 20:  # traffic is flowing before the update starts
        time.sleep(0.01)
    sm.update_endpoint(**request)
    statuses = []
    deadline = time.monotonic() + 60
    while True:
        described = sm.describe_endpoint(EndpointName=request["EndpointName"])
        statuses.append(described["EndpointStatus"])
        if described["EndpointStatus"] == "InService":
            return described, statuses
        assert time.monotonic() < deadline, "update did not finish"
        time.sleep(0.05)


# -- traffic plans ------------------------------------------------------------------------------
def test_traffic_steps_follow_the_routing_configuration():
    assert traffic_steps({}, 2) == [(1.0, 0.0)]
    canary = {
        "Type": "CANARY",
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
        "WaitIntervalInSeconds": 3,
    }
    assert traffic_steps({"TrafficRoutingConfiguration": canary}, 4) == [(0.25, 3.0), (1.0, 0.0)]
    by_count = {**canary, "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}
    assert traffic_steps({"TrafficRoutingConfiguration": by_count}, 4) == [(0.25, 3.0), (1.0, 0.0)]
    linear = {
        "Type": "LINEAR",
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 40},
        "WaitIntervalInSeconds": 1,
    }
    assert traffic_steps({"TrafficRoutingConfiguration": linear}, 1) == [
        (0.4, 1.0),
        (0.8, 1.0),
        (1.0, 1.0),
    ]
    with pytest.raises(ValueError, match="CanarySize"):
        traffic_steps({"TrafficRoutingConfiguration": {"Type": "CANARY"}}, 1)


# -- updates under load -------------------------------------------------------------------------
def test_healthy_canary_shifts_all_traffic_with_zero_failures(server):
    sm = fresh_endpoint(server, "canary-ok")
    routing = {
        "Type": "CANARY",
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 30},
        "WaitIntervalInSeconds": 1,
    }
    with Load(server.url, "canary-ok") as load:
        described, statuses = run_update(sm, update_request("canary-ok", "green", routing), load)
        runtime = boto("sagemaker-runtime", server.url)
        answered_after = {
            runtime.invoke_endpoint(
                EndpointName="canary-ok",
                Body='{"features": ["ok"]}',
                ContentType="application/json",
            )["InvokedProductionVariant"]
            for _ in range(20)
        }
    assert load.failures == []
    assert "Updating" in statuses
    assert described["EndpointConfigName"] == "green"
    assert "FailureReason" not in described
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["Green"]
    assert load.variants["Blue"] > 0 and load.variants["Green"] > 0
    assert answered_after == {"Green"}  # after the update only the new fleet answers


def test_model_that_fails_to_load_rolls_back_with_zero_failures(server):
    sm = fresh_endpoint(server, "canary-broken")
    routing = {
        "Type": "CANARY",
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
        "WaitIntervalInSeconds": 1,
    }
    with Load(server.url, "canary-broken") as load:
        described, _ = run_update(sm, update_request("canary-broken", "broken-load", routing), load)
        time.sleep(0.2)
    assert load.failures == []
    assert described["EndpointConfigName"] == "blue"
    assert "health check" in described["FailureReason"]
    assert "weights are corrupt" in described["FailureReason"]
    assert set(load.variants) == {"Blue"}


def test_model_that_fails_its_warm_up_never_gets_traffic(server):
    sm = fresh_endpoint(server, "all-at-once-broken")
    with Load(server.url, "all-at-once-broken") as load:
        described, _ = run_update(
            sm,
            update_request(
                "all-at-once-broken",
                "broken-predict",
                {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
            ),
            load,
        )
    assert load.failures == []
    assert described["EndpointConfigName"] == "blue"
    assert "predict exploded" in described["FailureReason"]


def test_error_rate_alarm_rolls_back_a_model_that_fails_on_traffic(server):
    sm = fresh_endpoint(server, "linear-flaky")
    routing = {
        "Type": "LINEAR",
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
        "WaitIntervalInSeconds": 1,
    }
    with Load(server.url, "linear-flaky") as load:
        described, _ = run_update(sm, update_request("linear-flaky", "flaky", routing), load)
        time.sleep(0.2)
    # as on SageMaker, callers routed to the broken new fleet get its ModelErrors until the
    # rollback (no hidden retry on the old fleet), and the update reports how many
    assert load.failures
    assert all("(ModelError)" in f and "flaky model failed" in f for f in load.failures)
    report = json.loads(
        urllib.request.urlopen(f"{server.url}/endpoints/linear-flaky/stats").read()
    )["last_update"]
    assert report["Outcome"] == "RolledBack"
    assert report["NewFleetFailedRequests"] == len(load.failures)
    assert f"callers got {len(load.failures)} failed requests" in described["FailureReason"]
    assert described["EndpointConfigName"] == "blue"
    assert "Alarm reviews-5xx-rate fired" in described["FailureReason"]
    assert set(load.variants) == {"Blue"}
    runtime = boto("sagemaker-runtime", server.url)
    answer = runtime.invoke_endpoint(
        EndpointName="linear-flaky", Body='{"features": ["ok"]}', ContentType="application/json"
    )
    assert answer["InvokedProductionVariant"] == "Blue"


def test_the_stored_alarm_decides_the_rollback(server, lake):
    """The same failing model stays when its alarm tolerates the failures (its threshold, not a
    server setting, decides), and an alarm nobody created fails the update."""
    put_alarm(lake, "tolerant", threshold_percent=100.0)  # > 100% never happens
    sm = fresh_endpoint(server, "tolerant-flaky")
    routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 1}
    with Load(server.url, "tolerant-flaky") as load:
        described, _ = run_update(
            sm, update_request("tolerant-flaky", "flaky", routing, alarm="tolerant"), load
        )
    assert described["EndpointConfigName"] == "flaky"
    assert not described.get("FailureReason")

    sm = fresh_endpoint(server, "no-alarm")
    sm.update_endpoint(**update_request("no-alarm", "green", routing, alarm="never-created"))
    described = wait_settled(sm, "no-alarm")
    assert described["EndpointConfigName"] == "blue"
    assert "'never-created' does not exist" in described["FailureReason"]


def test_an_update_in_progress_cannot_be_updated_again(server):
    sm = fresh_endpoint(server, "busy")
    routing = {
        "Type": "CANARY",
        "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
        "WaitIntervalInSeconds": 2,
    }
    sm.update_endpoint(**update_request("busy", "green", routing, alarms=False))
    with pytest.raises(ClientError, match="Cannot update in-progress endpoint"):
        sm.update_endpoint(**update_request("busy", "green", routing, alarms=False))
    assert sm.describe_endpoint(EndpointName="busy")["EndpointStatus"] == "Updating"
    described = wait_settled(sm, "busy")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "green"


def test_deploy_operator_fails_when_the_update_rolls_back(server, lake):
    """The endpoint ends InService on the old config: the deploy task fails, not passes."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.pipeline.targets.local.operators import SageMakerEndpointOperator

    fresh_endpoint(server, "deploy-broken")
    routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 1}
    operator = SageMakerEndpointOperator(
        task_id="deploy_endpoint",
        config=update_request("deploy-broken", "broken-load", routing),
        operation="update",
        lake=str(lake),
        region="us-east-1",
        endpoint_url=server.url,
    )
    with pytest.raises(AirflowFailException, match="rolled back, it still serves blue"):
        operator.execute({})


def test_retried_deploy_operator_waits_on_the_update_its_first_attempt_sent(server, lake):
    """A retry of settle_endpoint / deploy_endpoint while its own update is under way: no second
    UpdateEndpoint (refused while Updating), the task waits and ends on the new config."""
    from include.pipeline.targets.local.operators import SageMakerEndpointOperator

    sm = fresh_endpoint(server, "retried")
    routing = {
        "Type": "CANARY",
        "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
        "WaitIntervalInSeconds": 1,
    }
    request = update_request("retried", "green", routing, alarms=False)
    sm.update_endpoint(**request)  # the first attempt, lost after sending it
    result = SageMakerEndpointOperator(
        task_id="settle_endpoint",
        config={
            "EndpointConfig": single_variant_config("green", "green-model", "Green"),
            "Endpoint": request,
        },
        operation="update",
        lake=str(lake),
        region="us-east-1",
        endpoint_url=server.url,
    ).execute({})
    assert result["Endpoint"]["EndpointStatus"] == "InService"
    assert result["Endpoint"]["EndpointConfigName"] == "green"
