"""Blue/green updates under concurrent traffic: broken models roll back, callers see what
SageMaker's callers would (zero failures for a healthy update, ModelErrors from a broken one)."""

from __future__ import annotations

import contextlib
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
from include.pipeline.task_ids import UPDATE_REPORT_KEY
from tests.aws_model import assert_valid
from tests.test_endpoint_server import boto, wait_settled
from tests.test_inference import (
    BROKEN_MODEL_FN,
    BROKEN_PREDICT_FN,
    FLAKY_PREDICT_FN,
    build_tiny_model,
    register_model,
    two_model_lake,
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
    root, model = two_model_lake(tmp_path_factory, "blue-model", "green-model", seed=2)
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


def routing(
    kind: str, size: int | None = None, unit: str = "CAPACITY_PERCENT", wait: int = 1
) -> dict:
    """A TrafficRoutingConfiguration: CANARY or LINEAR with their step ``size``, or ALL_AT_ONCE."""
    config: dict = {"Type": kind, "WaitIntervalInSeconds": wait}
    if size is not None:
        step = "CanarySize" if kind == "CANARY" else "LinearStepSize"
        config[step] = {"Type": unit, "Value": size}
    return config


def update_under_load(
    server, endpoint: str, config_name: str, traffic: dict, **request
) -> tuple[dict, list[str], Load]:
    """A fresh endpoint on blue, updated to ``config_name`` while callers keep invoking it; returns
    DescribeEndpoint once settled, the statuses seen and the load's record."""
    sm = fresh_endpoint(server, endpoint)
    with Load(server.url, endpoint) as load:
        update = update_request(endpoint, config_name, traffic, **request)
        described, statuses = run_update(sm, update, load)
        time.sleep(0.2)  # callers keep calling the settled endpoint
    return described, statuses, load


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
    described, statuses, load = update_under_load(
        server, "canary-ok", "green", routing("CANARY", 30)
    )
    runtime = boto("sagemaker-runtime", server.url)
    answered_after = {
        runtime.invoke_endpoint(
            EndpointName="canary-ok", Body='{"features": ["ok"]}', ContentType="application/json"
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
    # the host's record of the steps it took: the canary's 30 % for its wait, then all traffic
    report = json.loads(urllib.request.urlopen(f"{server.url}/endpoints/canary-ok/stats").read())[
        "last_update"
    ]
    canary, rest = report["TrafficSteps"]
    assert (canary["NewFleetShare"], rest["NewFleetShare"]) == (0.3, 1.0)
    assert canary["Seconds"] >= 1.0 and canary["NewFleetInvocations"] > 0
    assert canary["NewFleetFailedRequests"] == rest["NewFleetFailedRequests"] == 0
    answered = sum(step["NewFleetInvocations"] for step in report["TrafficSteps"])
    assert answered == report["NewFleetInvocations"]


def test_model_that_fails_to_load_rolls_back_with_zero_failures(server):
    described, _, load = update_under_load(
        server, "canary-broken", "broken-load", routing("CANARY", 50)
    )
    assert load.failures == []
    assert described["EndpointConfigName"] == "blue"
    assert "health check" in described["FailureReason"]
    assert "weights are corrupt" in described["FailureReason"]
    assert set(load.variants) == {"Blue"}


def test_model_that_fails_its_warm_up_never_gets_traffic(server):
    described, _, load = update_under_load(
        server, "all-at-once-broken", "broken-predict", routing("ALL_AT_ONCE", wait=0)
    )
    assert load.failures == []
    assert described["EndpointConfigName"] == "blue"
    assert "predict exploded" in described["FailureReason"]


def test_error_rate_alarm_rolls_back_a_model_that_fails_on_traffic(server):
    described, _, load = update_under_load(server, "linear-flaky", "flaky", routing("LINEAR", 50))
    # as on SageMaker, callers routed to the broken new fleet get its ModelErrors until the
    # rollback (no hidden retry on the old fleet), and the update reports how many
    assert load.failures
    assert all("(ModelError)" in f and "flaky model failed" in f for f in load.failures)
    report = json.loads(
        urllib.request.urlopen(f"{server.url}/endpoints/linear-flaky/stats").read()
    )["last_update"]
    assert report["Outcome"] == "RolledBack"
    assert report["NewFleetFailedRequests"] == len(load.failures)
    # it never got past its first step: half the traffic, every failure in it
    (step,) = report["TrafficSteps"]
    assert step["NewFleetShare"] == 0.5 and step["NewFleetFailedRequests"] == len(load.failures)
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
    traffic = routing("ALL_AT_ONCE")
    described, _, _ = update_under_load(
        server, "tolerant-flaky", "flaky", traffic, alarm="tolerant"
    )
    assert described["EndpointConfigName"] == "flaky"
    assert not described.get("FailureReason")

    sm = fresh_endpoint(server, "no-alarm")
    sm.update_endpoint(**update_request("no-alarm", "green", traffic, alarm="never-created"))
    described = wait_settled(sm, "no-alarm")
    assert described["EndpointConfigName"] == "blue"
    assert "'never-created' does not exist" in described["FailureReason"]


def test_an_update_in_progress_cannot_be_updated_again(server):
    sm = fresh_endpoint(server, "busy")
    traffic = routing("CANARY", 1, unit="INSTANCE_COUNT", wait=2)
    sm.update_endpoint(**update_request("busy", "green", traffic, alarms=False))
    with pytest.raises(ClientError, match="Cannot update in-progress endpoint"):
        sm.update_endpoint(**update_request("busy", "green", traffic, alarms=False))
    assert sm.describe_endpoint(EndpointName="busy")["EndpointStatus"] == "Updating"
    described = wait_settled(sm, "busy")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "green"


def test_deploy_operator_fails_when_the_update_rolls_back(server, lake):
    """The endpoint ends InService on the old config: the deploy task fails, not passes."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.pipeline.targets.local.operators import SageMakerEndpointOperator

    fresh_endpoint(server, "deploy-broken")
    traffic = routing("ALL_AT_ONCE")
    operator = SageMakerEndpointOperator(
        task_id="deploy_endpoint",
        config=update_request("deploy-broken", "broken-load", traffic),
        operation="update",
        lake=str(lake),
        region="us-east-1",
        endpoint_url=server.url,
    )
    pushed = {}

    class TaskInstance:  # what the operator tells the run summary
        def xcom_push(self, key, value):
            pushed[key] = value

    with pytest.raises(AirflowFailException, match="rolled back, it still serves blue"):
        operator.execute({"ti": TaskInstance()})
    report = pushed[UPDATE_REPORT_KEY]
    assert report["Outcome"] == "RolledBack" and "health check" in report["FailureReason"]
    assert report["TrafficSteps"] == []  # no traffic moved to a fleet that failed its check


def test_retried_deploy_operator_waits_on_the_update_its_first_attempt_sent(server, lake):
    """A retry of settle_endpoint / deploy_endpoint while its own update is under way: no second
    UpdateEndpoint (refused while Updating), the task waits and ends on the new config."""
    from include.pipeline.targets.local.operators import SageMakerEndpointOperator

    sm = fresh_endpoint(server, "retried")
    traffic = routing("CANARY", 1, unit="INSTANCE_COUNT")
    request = update_request("retried", "green", traffic, alarms=False)
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


def _challenger_config(sm, name: str, variant: str, model: str) -> str:
    """The champion on AllTraffic with the failing ``model`` beside it as the Shadow or the
    Challenger variant (what the main DAG's shadow / ab strategies deploy)."""
    champion = single_variant_config(name, "blue-model", "AllTraffic")
    beside = {**champion["ProductionVariants"][0], "VariantName": variant, "ModelName": model}
    if variant == "Shadow":
        champion["ShadowProductionVariants"] = [beside]
    else:
        champion["ProductionVariants"][0]["InitialVariantWeight"] = 0.5
        champion["ProductionVariants"].append({**beside, "InitialVariantWeight": 0.5})
    sm.create_endpoint_config(**champion)
    return name


@pytest.mark.parametrize("variant", ["Shadow", "Challenger"])
def test_the_alarm_on_the_challengers_variant_rolls_back_a_failing_challenger(
    server, lake, tmp_path, variant
):
    """The pipeline's alarm on the challenger's variant trips on its failures (a Shadow's are
    its copies, which callers never see); an alarm on AllTraffic, the champion, does not."""
    sm = boto("sagemaker", server.url)
    with contextlib.suppress(ClientError):  # made by the other case
        sm.create_endpoint_config(**single_variant_config("champion", "blue-model", "AllTraffic"))
    tiny = build_tiny_model(tmp_path / "model")
    traffic = routing("ALL_AT_ONCE")
    outcomes = {}
    for watched in ("AllTraffic", variant):
        name = f"{variant.lower()}-watched-{watched.lower()}"
        register_model(lake, tiny, f"{name}-flaky", FLAKY_PREDICT_FN)  # fails after its warm-up
        config = _challenger_config(sm, f"{name}-update", variant, f"{name}-flaky")
        alarm = rollback_alarm_request(endpoint_name=name, variant_name=watched)
        targets.load(Settings(lake=lake)).client("cloudwatch").put_metric_alarm(**alarm)
        sm.create_endpoint(EndpointName=name, EndpointConfigName="champion")
        assert wait_settled(sm, name)["EndpointStatus"] == "InService"
        with Load(server.url, name) as load:
            request = update_request(name, config, traffic, alarm=alarm["AlarmName"])
            outcomes[watched] = run_update(sm, request, load)[0], load.failures
    champion_watched, _ = outcomes["AllTraffic"]
    assert champion_watched["EndpointConfigName"].endswith("-update")  # the failing one stayed
    described, failures = outcomes[variant]
    assert described["EndpointConfigName"] == "champion"  # rolled back
    assert f"fired: the new fleet's {variant} failed" in described["FailureReason"]
    if variant == "Shadow":
        assert failures == []  # shadow copies fail where no caller sees them
