"""The local endpoint service over real HTTP, driven by real boto3 clients."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from include.pipeline.targets.local.endpoint import client as endpoint_client
from include.pipeline.targets.local.endpoint.host import start_server
from include.pipeline.targets.local.endpoint.service import ServiceConfig
from tests.aws_model import assert_valid
from tests.moto_server import local_client
from tests.test_inference import build_tiny_model, register_model, two_model_lake

MAX_BODY = 64 * 1024


def boto(service: str, url: str):
    return local_client(service, url, config=Config(retries={"max_attempts": 1}))


def run_the_demo_notice_curl(url: str, endpoint: str, candidate: str) -> list[dict]:
    """The curl the demo prints for an endpoint serving ``candidate``, run as printed; its
    answer read in that candidate's contract."""
    import shlex
    import subprocess

    from include.pipeline import candidates
    from include.pipeline.targets.local.target import LocalTarget

    notice = LocalTarget(None).endpoint_notice(
        {"endpoint_name": endpoint, "endpoint_url": url, "candidate": candidate}
    )
    (line,) = [line for line in notice.splitlines() if line.strip().startswith("curl ")]
    answer = subprocess.run(
        [*shlex.split(line), "--fail-with-body"], capture_output=True, check=True, timeout=30
    ).stdout
    _, read = candidates.get(candidate).invocation(["I love this dress"])
    (prediction,) = read(answer)
    assert prediction["predicted_label"] in (-1, 0, 1) and 0 < prediction["probability"] <= 1
    return [prediction]


def config_request(name: str, capture_uri: str | None = None) -> dict:
    request = {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": "Blue",
                "ModelName": "model-a",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 3.0,
            },
            {
                "VariantName": "Red",
                "ModelName": "model-b",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            },
        ],
        "ShadowProductionVariants": [
            {
                "VariantName": "Shadow",
                "ModelName": "model-b",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
    }
    if capture_uri:
        request["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": capture_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
    return request


def deploy(sm, endpoint: str, config: dict) -> dict:
    assert_valid("sagemaker", "CreateEndpointConfig", config)
    sm.create_endpoint_config(**config)
    create = {"EndpointName": endpoint, "EndpointConfigName": config["EndpointConfigName"]}
    assert_valid("sagemaker", "CreateEndpoint", create)
    sm.create_endpoint(**create)
    return wait_settled(sm, endpoint)


def serve_model(sm, endpoint: str, model: dict) -> dict:
    """CreateModel ``model``, then ``endpoint`` on one AllTraffic variant of it; its describe
    once settled."""
    sm.create_model(**model)
    config = {
        "EndpointConfigName": f"{endpoint}-config",
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": model["ModelName"],
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    }
    return deploy(sm, endpoint, config)


def wait_settled(sm, endpoint: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        described = sm.describe_endpoint(EndpointName=endpoint)
        if described["EndpointStatus"] not in ("Creating", "Updating", "RollingBack"):
            return described
        assert time.monotonic() < deadline, f"{endpoint} stuck in {described['EndpointStatus']}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    return two_model_lake(tmp_path_factory, "model-a", "model-b", seed=1)[0]


@pytest.fixture(scope="module")
def server(lake):
    running = start_server(lake, config=ServiceConfig(max_body_bytes=MAX_BODY))
    sm = boto("sagemaker", running.url)
    described = deploy(sm, "reviews", config_request("reviews-config", "s3://bucket/capture"))
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def runtime(server):
    return boto("sagemaker-runtime", server.url)


def invoke(runtime, body, content_type="application/json", **kwargs):
    return runtime.invoke_endpoint(
        EndpointName="reviews", Body=body, ContentType=content_type, **kwargs
    )


# -- data plane ---------------------------------------------------------------------------------
def test_ping_answers(server):
    with urllib.request.urlopen(f"{server.url}/ping") as response:
        assert json.loads(response.read())["status"] == "healthy"


def test_invoke_json_returns_one_answer_per_review(runtime):
    params = {
        "EndpointName": "reviews",
        "Body": json.dumps({"features": ["the dress is great", "bad fit"]}),
        "ContentType": "application/json",
        "Accept": "application/json",
    }
    assert_valid("sagemaker-runtime", "InvokeEndpoint", params)
    response = runtime.invoke_endpoint(**params)
    answers = json.loads(response["Body"].read())
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] in ("Blue", "Red")
    assert len(answers) == 2
    assert all(a["predicted_label"] in (-1, 0, 1) and 0 < a["probability"] <= 1 for a in answers)


def test_the_demo_notice_curl_answers(server):
    run_the_demo_notice_curl(server.url, "reviews", "finetune")


def test_invoke_jsonlines_answers_in_jsonlines(runtime):
    body = '{"features": ["love it"]}\n{"features": ["hate it", "ok"]}\n'
    response = invoke(runtime, body, "application/jsonlines")
    lines = response["Body"].read().decode().splitlines()
    assert response["ContentType"] == "application/jsonlines"
    assert [set(json.loads(line)) for line in lines] == [{"predicted_label", "probability"}] * 3


def test_target_variant_is_honoured_and_named(runtime):
    for variant in ("Red", "Blue"):
        response = invoke(runtime, '{"features": ["ok"]}', TargetVariant=variant)
        assert response["InvokedProductionVariant"] == variant
    with pytest.raises(ClientError) as err:
        invoke(runtime, '{"features": ["ok"]}', TargetVariant="Shadow")
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert "Shadow" in err.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ("{not json", "application/json", 400, "malformed JSON"),
        ("[]", "application/json", 400, "empty request"),
        ('{"features": ["a"]}', "text/csv", 415, "unsupported content type"),
    ],
)
def test_bad_bodies_are_model_client_errors(runtime, body, content_type, status, message):
    with pytest.raises(ClientError) as err:
        invoke(runtime, body, content_type)
    error = err.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["Error"]["Code"] == "ModelError"
    assert f"client error ({status})" in error["Error"]["Message"]
    assert message in error["Error"]["Message"]


def test_request_errors_are_validation_errors(server, runtime):
    cases = [
        (lambda: invoke(runtime, b"", "application/json"), 400, "body is empty"),
        (lambda: invoke(runtime, b"x" * (MAX_BODY + 1)), 413, "exceeds the limit"),
        (
            lambda: runtime.invoke_endpoint(
                EndpointName="nope", Body=b"{}", ContentType="application/json"
            ),
            400,
            "Endpoint nope of account",
        ),
    ]
    for call, status, message in cases:
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert err.value.response["Error"]["Code"] == "ValidationError"
        assert message in err.value.response["Error"]["Message"]
    # the server is still up and serving
    assert invoke(runtime, '{"features": ["fine"]}')["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_weighted_routing_converges_to_the_weights(runtime):
    counts = Counter(
        invoke(runtime, '{"features": ["ok"]}')["InvokedProductionVariant"] for _ in range(400)
    )
    assert set(counts) == {"Blue", "Red"}
    # five standard deviations of a fair 3:1 draw (a false failure once in millions of runs;
    # 0.07, three, failed about once in a thousand); equal weights (0.5) are still far outside
    assert counts["Blue"] / 400 == pytest.approx(0.75, abs=5 * math.sqrt(0.75 * 0.25 / 400))


def test_shadow_gets_copies_and_never_answers(server, runtime, lake):
    before = server.service.stats("reviews")["live"]["shadows"]["Shadow"]["invocations"]
    variants = {
        invoke(runtime, json.dumps({"features": [f"shadow copy {i}"]}))["InvokedProductionVariant"]
        for i in range(20)
    }
    assert "Shadow" not in variants
    shadow_log = lake / "_sagemaker" / "shadow-logs" / "reviews" / "Shadow"
    deadline = time.monotonic() + 20
    while True:
        records = [
            json.loads(line)
            for f in shadow_log.rglob("*.jsonl")
            for line in f.read_text().splitlines()
        ]
        copies = [r for r in records if "shadow copy" in r["input"]]
        if len(copies) >= 20 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(copies) == 20
    assert (
        server.service.stats("reviews")["live"]["shadows"]["Shadow"]["invocations"] >= before + 20
    )
    assert all(r["shadowError"] is None and json.loads(r["shadowOutput"]) for r in copies)


def test_data_capture_writes_sagemaker_records(runtime, lake):
    invoke(runtime, '{"features": ["captured review"]}', TargetVariant="Red")
    files = list((lake / "bucket" / "capture" / "reviews" / "Red").rglob("*.jsonl"))
    assert files and len(files[0].relative_to(lake / "bucket" / "capture").parts) == 7
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    hit = [r for r in records if "captured review" in r["captureData"]["endpointInput"]["data"]]
    assert len(hit) == 1
    assert hit[0]["captureData"]["endpointInput"]["encoding"] == "JSON"
    assert json.loads(hit[0]["captureData"]["endpointOutput"]["data"])[0]["predicted_label"] in (
        -1,
        0,
        1,
    )


# -- control plane ------------------------------------------------------------------------------
def test_describe_endpoint_has_the_aws_shape(server):
    sm = boto("sagemaker", server.url)
    described = sm.describe_endpoint(EndpointName="reviews")
    assert described["EndpointArn"] == "arn:aws:sagemaker:us-east-1:000000000000:endpoint/reviews"
    assert described["EndpointConfigName"] == "reviews-config"
    weights = {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]}
    assert weights == {"Blue": 3.0, "Red": 1.0}
    assert [v["VariantName"] for v in described["ShadowProductionVariants"]] == ["Shadow"]
    assert described["DataCaptureConfig"]["CurrentSamplingPercentage"] == 100
    assert described["CreationTime"].year >= 2024


def test_control_plane_errors_are_aws_errors(server):
    sm = boto("sagemaker", server.url)
    with pytest.raises(ClientError) as err:
        sm.create_endpoint(EndpointName="reviews", EndpointConfigName="reviews-config")
    # the provider's SageMakerEndpointOperator switches to update on exactly this message
    assert err.value.response["Error"]["Message"].startswith(
        "Cannot create already existing endpoint"
    )
    with pytest.raises(ClientError) as err:
        sm.describe_endpoint(EndpointName="missing")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError, match="Could not find model"):
        sm.create_endpoint_config(
            EndpointConfigName="bad",
            ProductionVariants=[
                {"VariantName": "A", "ModelName": "ghost", "InitialInstanceCount": 1}
            ],
        )

    def raw(target: str, body: bytes) -> tuple[int, dict]:
        request = urllib.request.Request(
            server.url + "/",
            data=body,
            headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
        )
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    status, body = raw("SageMaker.CreateEndpoint", b'{"EndpointName": "x"}')
    assert status == 400 and body["__type"] == "ValidationException"
    assert "EndpointConfigName" in body["message"]
    status, body = raw("SageMaker.CreateEndpoint", b"{oops")
    assert status == 400 and body["__type"] == "SerializationException"
    status, body = raw("SageMaker.CreateTrainingJob", b"{}")
    assert status == 400 and body["__type"] == "UnknownOperationException"


def test_update_weights_shifts_traffic(server, runtime):
    sm = boto("sagemaker", server.url)
    request = {
        "EndpointName": "reviews",
        "DesiredWeightsAndCapacities": [{"VariantName": "Blue", "DesiredWeight": 0.0}],
    }
    assert_valid("sagemaker", "UpdateEndpointWeightsAndCapacities", request)
    sm.update_endpoint_weights_and_capacities(**request)
    try:
        described = sm.describe_endpoint(EndpointName="reviews")
        weights = {v["VariantName"]: v["DesiredWeight"] for v in described["ProductionVariants"]}
        assert weights == {"Blue": 0.0, "Red": 1.0}
        variants = {
            invoke(runtime, '{"features": ["ok"]}')["InvokedProductionVariant"] for _ in range(30)
        }
        assert variants == {"Red"}
        with pytest.raises(ClientError, match="not present"):
            sm.update_endpoint_weights_and_capacities(
                EndpointName="reviews",
                DesiredWeightsAndCapacities=[{"VariantName": "Nope", "DesiredWeight": 1.0}],
            )
    finally:
        request["DesiredWeightsAndCapacities"][0]["DesiredWeight"] = 3.0
        sm.update_endpoint_weights_and_capacities(**request)


def test_a_restarted_server_serves_the_same_endpoints(lake, tmp_path):
    first = start_server(lake)
    sm = boto("sagemaker", first.url)
    config = config_request("restart-config")
    del config["ShadowProductionVariants"]
    deploy(sm, "restartable", config)
    sm.update_endpoint_weights_and_capacities(
        EndpointName="restartable",
        DesiredWeightsAndCapacities=[{"VariantName": "Red", "DesiredWeight": 0.0}],
    )
    first.stop()
    second = start_server(lake)
    try:
        described = boto("sagemaker", second.url).describe_endpoint(EndpointName="restartable")
        assert described["EndpointStatus"] == "InService"
        runtime = boto("sagemaker-runtime", second.url)
        variants = {
            runtime.invoke_endpoint(
                EndpointName="restartable",
                Body='{"features": ["ok"]}',
                ContentType="application/json",
            )["InvokedProductionVariant"]
            for _ in range(10)
        }
        assert variants == {"Blue"}  # the weights survived the restart
        boto("sagemaker", second.url).delete_endpoint(EndpointName="restartable")
        with pytest.raises(ClientError) as err:
            runtime.invoke_endpoint(
                EndpointName="restartable",
                Body='{"features": ["ok"]}',
                ContentType="application/json",
            )
        assert err.value.response["Error"]["Code"] == "ValidationError"
    finally:
        second.stop()


def test_a_failing_model_leaves_the_endpoint_failed(server, lake, tmp_path):
    from tests.test_inference import BROKEN_MODEL_FN

    register_model(lake, build_tiny_model(tmp_path / "m"), "model-broken", BROKEN_MODEL_FN)
    sm = boto("sagemaker", server.url)
    config = {
        "EndpointConfigName": "broken-config",
        "ProductionVariants": [
            {"VariantName": "A", "ModelName": "model-broken", "InitialInstanceCount": 1}
        ],
    }
    described = deploy(sm, "broken", config)
    assert described["EndpointStatus"] == "Failed"
    assert "weights are corrupt" in described["FailureReason"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ensure_server_starts_one_detached_server(tmp_path):
    port = _free_port()
    url = endpoint_client.ensure_server(tmp_path, port=port, timeout=120)
    pid = int(endpoint_client.pid_path(tmp_path).read_text())
    try:
        assert url == f"http://127.0.0.1:{port}"
        assert endpoint_client.ensure_server(tmp_path, port=port) == url  # reuses it
        assert int(endpoint_client.pid_path(tmp_path).read_text()) == pid
        with pytest.raises(RuntimeError, match="serves lake"):
            endpoint_client.ensure_server(tmp_path / "other", port=port)
        sm = endpoint_client.client("sagemaker", url)
        assert sm.list_endpoints()["Endpoints"] == []
        # no endpoint yet, and the serving stack is being imported for the first deployment
        maps = Path(f"/proc/{pid}/maps")
        deadline = time.monotonic() + 120
        while "onnxruntime_pybind11_state" not in maps.read_text():
            assert time.monotonic() < deadline, "the server never imported ONNX Runtime"
            time.sleep(0.2)
        assert "libtorch" in maps.read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while endpoint_client.ping(url) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_an_update_to_a_config_without_shadow_or_capture_drops_them(lake):
    """DescribeEndpoint shows the fleet that serves now: nothing stale from the old config."""
    running = start_server(lake, config=ServiceConfig(max_body_bytes=MAX_BODY))
    try:
        sm = boto("sagemaker", running.url)
        deploy(sm, "slimming", config_request("slimming-v1", "s3://bucket/capture"))
        plain = config_request("slimming-v2")
        del plain["ShadowProductionVariants"]
        sm.create_endpoint_config(**plain)
        sm.update_endpoint(EndpointName="slimming", EndpointConfigName="slimming-v2")
        described = wait_settled(sm, "slimming")
        assert described["EndpointConfigName"] == "slimming-v2"
        assert "ShadowProductionVariants" not in described
        assert "DataCaptureConfig" not in described
        assert [v["VariantName"] for v in described["ProductionVariants"]] == ["Blue", "Red"]
    finally:
        running.stop()


def test_a_model_load_waits_for_the_serving_preload(tmp_path, monkeypatch):
    """transformers' lazy module breaks when two threads import it at once: a load that arrives
    while the host is preloading the serving stack waits for the preload to finish."""
    from include.pipeline.targets.local.endpoint import models

    (tmp_path / "slow_serving_stack.py").write_text(
        "import time\ntime.sleep(1.0)\nDONE = time.monotonic()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    thread = models.preload(("slow_serving_stack",))
    with pytest.raises(models.SageMakerValidationError, match="missing"):
        models.load_handler("missing", tmp_path / "lake")
    failed_at = time.monotonic()
    thread.join()
    import slow_serving_stack

    assert failed_at >= slow_serving_stack.DONE
