"""The local endpoint host under hostile input: malformed HTTP, traversal names, slow clients.

Everything runs against 127.0.0.1 on a free port, bounded in count and time: no case may get a
5xx, none may hang (every connection is answered or closed within the server's deadlines), and
the server answers valid requests afterwards.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from include.pipeline.targets.local.endpoint import models
from include.pipeline.targets.local.endpoint.batching import BatcherClosed, MicroBatcher
from include.pipeline.targets.local.endpoint.blue_green import max_update_seconds
from include.pipeline.targets.local.endpoint.server import EndpointServer
from include.pipeline.targets.local.endpoint.service import EndpointService, ServiceConfig
from include.pipeline.targets.local.names import InvalidName, safe_join, validate
from tests.test_endpoint_server import boto, wait_settled
from tests.test_inference import build_tiny_model, register_model

DEADLINE = 1.0  # the test server's header/body/idle deadlines (seconds)
TRAVERSAL = ["../../..", "../outside", "a/../../b", "..", "x" * 5000]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "lake"
    root.mkdir()
    register_model(root, build_tiny_model(tmp_path_factory.mktemp("tiny") / "model"), "model-a")
    # what traversal would reach: files beside and above the lake
    (root.parent / "outside.json").write_text('{"secret": true}')
    return root


@pytest.fixture(scope="module")
def server(lake):
    service = EndpointService(lake, config=ServiceConfig(max_body_bytes=64 * 1024))
    httpd = EndpointServer(
        ("127.0.0.1", 0),
        service,
        max_connections=16,
        header_seconds=DEADLINE,
        body_seconds=DEADLINE,
        idle_seconds=DEADLINE,
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    sm = boto("sagemaker", httpd.url)
    sm.create_endpoint_config(
        EndpointConfigName="cfg",
        ProductionVariants=[
            {"VariantName": "Blue", "ModelName": "model-a", "InitialInstanceCount": 1}
        ],
    )
    sm.create_endpoint(EndpointName="reviews", EndpointConfigName="cfg")
    assert wait_settled(sm, "reviews")["EndpointStatus"] == "InService"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    service.close()


def outside_files(lake: Path) -> dict[str, bytes]:
    """Every file outside the lake's state folders that traversal could touch."""
    return {str(p): p.read_bytes() for p in lake.parent.rglob("*") if p.is_file()}


def valid_invoke(url: str) -> int:
    request = urllib.request.Request(
        f"{url}/endpoints/reviews/invocations",
        data=b'{"features": ["a lovely dress"]}',
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        json.loads(response.read())
        return response.status


def exchange(url: str, payload: bytes, pause: float = 0.0) -> tuple[int | None, bytes, float]:
    """Send raw bytes; (status or None when closed without answer, head bytes, seconds)."""
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        try:
            sock.sendall(payload)
            if pause:
                time.sleep(pause)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, BrokenPipeError):
            data = b""
    elapsed = time.monotonic() - started
    if data.startswith(b"HTTP/"):
        return int(data.split(b" ", 2)[1]), data, elapsed
    return None, data, elapsed


# -- names ---------------------------------------------------------------------------------------
def test_validate_reads_awss_own_constraints():
    assert validate("sagemaker", "CreateEndpoint", "EndpointName", "reviews-1") == "reviews-1"
    for bad in [*TRAVERSAL, "", "-x", "a_b"]:
        with pytest.raises(InvalidName, match="validation error detected"):
            validate("sagemaker", "CreateEndpoint", "EndpointName", bad)
    with pytest.raises(InvalidName, match="5000 characters"):  # the message stays short
        validate("sagemaker", "CreateModel", "ModelName", "x" * 5000)
    # Glue allows almost any text (its Java pattern with surrogate pairs compiles) ...
    assert validate("glue", "GetTable", "Name", "..") == ".."
    with pytest.raises(InvalidName):
        validate("glue", "GetTable", "Name", "x" * 256)


def test_safe_join_keeps_paths_under_the_root(tmp_path):
    assert safe_join(tmp_path, "a", "b.json") == tmp_path / "a" / "b.json"
    for bad in ["..", ".", "a/b", "", "x\0y", "é" * 200]:
        with pytest.raises(InvalidName):
            safe_join(tmp_path, bad)
    (tmp_path / "link").symlink_to(tmp_path.parent)
    with pytest.raises(InvalidName, match="escapes"):
        safe_join(tmp_path, "link", "x.json")


# -- traversal on every engine -------------------------------------------------------------------
@pytest.mark.parametrize("name", TRAVERSAL)
def test_sagemaker_api_refuses_traversal_names(server, lake, name):
    before = outside_files(lake)
    sm = boto("sagemaker", server.url)
    calls = [
        lambda: sm.describe_endpoint(EndpointName=name),
        lambda: sm.delete_endpoint(EndpointName=name),
        lambda: sm.describe_endpoint_config(EndpointConfigName=name),
        lambda: sm.delete_model(ModelName=name),
        lambda: sm.create_model(
            ModelName=name,
            ExecutionRoleArn="arn:aws:iam::000000000000:role/r",
            PrimaryContainer={"Image": "i", "ModelDataUrl": "s3://bucket/m.tar.gz"},
        ),
        lambda: sm.create_endpoint_config(
            EndpointConfigName="ok-config",
            ProductionVariants=[{"VariantName": "A", "ModelName": name}],
        ),
    ]
    for call in calls:
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert err.value.response["Error"]["Code"] == "ValidationException"
    runtime = boto("sagemaker-runtime", server.url)
    with pytest.raises(ClientError) as err:
        runtime.invoke_endpoint(EndpointName=name, Body=b"{}", ContentType="application/json")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert outside_files(lake) == before


@pytest.mark.parametrize("name", ["../../outside", "x" * 5000])
def test_every_local_engine_refuses_traversal_names(tmp_path, name):
    from include.pipeline.targets.local import athena, catalog
    from include.pipeline.targets.local.featurestore import store
    from include.pipeline.targets.local.sagemaker import jobs, registry, transform

    lake = tmp_path / "lake"
    lake.mkdir()
    (tmp_path / "outside.json").write_text("{}")
    before = outside_files(lake)
    calls = [
        lambda: registry.create_model_package_group({"ModelPackageGroupName": name}, lake),
        lambda: registry.create_model_package({"ModelPackageGroupName": name}, lake),
        lambda: store.describe_feature_group(name, lake),
        lambda: store.create_feature_group(
            {
                "FeatureGroupName": name,
                "FeatureDefinitions": [{"FeatureName": "id", "FeatureType": "String"}],
                "RecordIdentifierFeatureName": "id",
                "EventTimeFeatureName": "id",
                "OfflineStoreConfig": {"S3StorageConfig": {"S3Uri": "s3://b/fs"}},
            },
            lake,
        ),
        lambda: jobs.run_processing_job({"ProcessingJobName": name}, lake=lake),
        lambda: jobs.run_training_job({"TrainingJobName": name}, lake=lake),
        lambda: transform.run_transform_job(
            {"TransformJobName": name, "ModelName": "m", "TransformInput": {}},
            lake=lake,
        ),
        lambda: transform.run_transform_job(
            {"TransformJobName": "ok", "ModelName": name, "TransformInput": {}}, lake=lake
        ),
        lambda: catalog.create_database(lake, DatabaseInput={"Name": name}),
        lambda: catalog.get_table(lake, "db", name),
        lambda: catalog.create_table(lake, DatabaseName=name, TableInput={"Name": "t"}),
        lambda: athena.get_query_execution(lake, name),
        lambda: athena.start_query_execution(
            lake,
            "SELECT 1",
            QueryExecutionContext={"Database": name},
            ResultConfiguration={"OutputLocation": "s3://b/q/"},
            WorkGroup=name,
        ),
    ]
    for call in calls:
        with pytest.raises(InvalidName):
            call()
    assert outside_files(lake) == before


def test_glue_names_that_pass_its_pattern_still_stay_in_the_catalog(tmp_path):
    from include.pipeline.targets.local import catalog

    lake = tmp_path / "lake"
    for name in ["..", "a/../../b", "."]:
        with pytest.raises(InvalidName):
            catalog.create_database(lake, DatabaseInput={"Name": name})
    assert not (tmp_path / "database.json").exists()
    assert not (lake / "database.json").exists()


# -- state files ---------------------------------------------------------------------------------
def test_a_broken_state_file_is_a_validation_error_not_a_500(server, lake):
    sm = boto("sagemaker", server.url)
    state = lake / models.STATE_DIR
    (state / "endpoints" / "hand-edited.json").write_text('{"EndpointName": "hand-edited"}')
    (state / "endpoint-configs" / "hand-cfg.json").write_text('{"Request": {}}')
    (state / "models" / "hand-model.json").write_text("not json")
    cases = [
        (lambda: sm.describe_endpoint(EndpointName="hand-edited"), "lacks EndpointArn"),
        (lambda: sm.describe_endpoint_config(EndpointConfigName="hand-cfg"), "lacks"),
        (lambda: sm.describe_model(ModelName="hand-model"), "unreadable state file"),
    ]
    for call, message in cases:
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert message in err.value.response["Error"]["Message"]
    assert sm.list_endpoints()["Endpoints"]  # one broken file hides nothing else


# -- HTTP fuzz -----------------------------------------------------------------------------------
TLS_CLIENT_HELLO = bytes.fromhex("16030100a5010000a10303") + bytes(range(32)) + b"\x00" * 40


def fuzz_cases() -> list[bytes]:
    rng = random.Random(12)
    body = b'{"features": ["x"]}'
    invoke = b"POST /endpoints/reviews/invocations HTTP/1.1\r\nHost: h\r\n"
    cases = [
        TLS_CLIENT_HELLO,
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1 extra words\r\n\r\n",
        b"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n",
        b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        b"DELETE /endpoints/reviews HTTP/1.1\r\nHost: h\r\n\r\n",
        b"HEAD /ping HTTP/1.1\r\nHost: h\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"GET /ping HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
        b"GET /ping HTTP/1.1\r\nX: " + b"y" * 70000 + b"\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nno colon here\r\n\r\n",
        invoke + b"Content-Length: -1\r\n\r\n" + body,
        invoke + b"Content-Length: +19\r\n\r\n" + body,
        invoke + b"Content-Length: 1_9\r\n\r\n" + body,
        invoke + b"Content-Length: abc\r\n\r\n" + body,
        invoke + b"Content-Length: 99999999999999999999999\r\n\r\n" + body,
        invoke + b"Content-Length: 19\r\nContent-Length: 5\r\n\r\n" + body,
        invoke + b"Content-Length: 500\r\n\r\n" + body,  # promises more than it sends
        invoke + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        invoke + b"Content-Type: application/json\r\nContent-Length: 5\r\n\r\n{{{{{",
        invoke + b"Content-Type: application/json\r\nContent-Length: 4\r\n\r\n\xff\xfe\x00\x01",
        b"POST / HTTP/1.1\r\nX-Amz-Target: SageMaker.Nope\r\nContent-Length: 2\r\n\r\n{}",
        b"POST / HTTP/1.1\r\nX-Amz-Target: SageMaker.DescribeEndpoint\r\n"
        b"Content-Length: 7\r\n\r\n[1,2,3]",
        b"POST / HTTP/1.1\r\nX-Amz-Target: SageMaker.DescribeEndpoint\r\n"
        b"Content-Length: 24\r\n\r\n" + b'{"EndpointName": "../.."}',
        b"POST / HTTP/1.1\r\nX-Amz-Target: SageMaker.DescribeEndpoint\r\n"
        b'Content-Length: 5023\r\n\r\n{"EndpointName": "' + b"x" * 5000 + b'"}',
        b"POST /endpoints/" + b"y" * 5000 + b"/invocations HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /endpoints/..%2F..%2Fetc/invocations HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /endpoints/..%2F..%2F/stats HTTP/1.1\r\n\r\n",
        b"GET /endpoints/%00/stats HTTP/1.1\r\n\r\n",
        b"GET /nowhere HTTP/1.1\r\n\r\n",
        b"GET /ping HTTP/1.1\r\n",  # headers never end: the deadline closes it
        b"GET /pi",  # the request line never ends
        b"",  # connect and say nothing
    ]
    cases += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(20)]
    cases += [
        b"GET /ping HTTP/1.1\r\n" + bytes(rng.randrange(256) for _ in range(64)) + b"\r\n\r\n"
        for _ in range(10)
    ]
    return cases


def test_fuzzed_requests_get_no_5xx_and_no_hang(server):
    cases = fuzz_cases()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda c: exchange(server.url, c), cases))
    for case, (status, head, elapsed) in zip(cases, results, strict=True):
        assert status is None or status < 500, (case[:80], head[:300])
        assert elapsed < DEADLINE + 5, (case[:80], elapsed)  # answered or closed, never hung
    answered = [r for r in results if r[0] is not None]
    assert len(answered) >= 35
    for status, head, _ in answered:
        assert b"x-amzn-ErrorType" in head or status == 200, head[:300]
        assert b"text/html" not in head
    tls = results[0]
    assert tls[0] == 400 and b"ValidationError" in tls[1]
    assert results[14][0] == 400  # Content-Length: -1
    assert results[5][0] == 405  # an unknown method: JSON, not 501 HTML
    assert valid_invoke(server.url) == 200


def test_two_hundred_slow_clients_do_not_stop_valid_requests(server):
    host, port = server.url.removeprefix("http://").split(":")
    slow = []
    try:
        for i in range(200):  # each sends half a request line and then nothing
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(b"POST /endpoints/reviews/invo" if i % 2 else b"GET /pi")
            slow.append(sock)
        statuses = [valid_invoke(server.url) for _ in range(5)]
    finally:
        for sock in slow:
            sock.close()
    assert statuses == [200] * 5
    assert server.connections.dropped > 0  # the cap held: idle connections were dropped
    assert valid_invoke(server.url) == 200


def test_payload_with_too_many_items_is_413(server):
    runtime = boto("sagemaker-runtime", server.url)
    body = json.dumps({"features": ["x"] * (models.MAX_ITEMS_PER_REQUEST + 1)})
    with pytest.raises(ClientError) as err:
        runtime.invoke_endpoint(EndpointName="reviews", Body=body, ContentType="application/json")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert str(models.MAX_ITEMS_PER_REQUEST) in err.value.response["Error"]["Message"]


# -- bounded waits -------------------------------------------------------------------------------
def test_a_closed_batcher_fails_at_once_and_every_wait_is_bounded():
    batcher = MicroBatcher(lambda items: [i * 2 for i in items])
    assert batcher.submit([1, 2]) == [2, 4]
    batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit([3])

    release = threading.Event()
    stuck = MicroBatcher(lambda items: release.wait() and items, timeout=0.2)
    with pytest.raises(TimeoutError, match="did not answer"):
        stuck.submit([1])
    release.set()
    stuck.close()


def test_an_unloaded_handler_refuses_instead_of_waiting(lake):
    handler = models.load_handler("model-a", lake)
    body, _ = handler.invoke(b'{"features": ["ok"]}', "application/json")
    assert json.loads(body)
    handler.close()
    with pytest.raises(BatcherClosed):
        handler.invoke(b'{"features": ["ok"]}', "application/json")


def test_the_operator_waits_as_long_as_the_update_may_take():
    linear = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "LINEAR",
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                "WaitIntervalInSeconds": 3600,
            },
            "TerminationWaitInSeconds": 600,
        }
    }
    assert max_update_seconds(linear) >= 4 * 3600 + 600
    linear["BlueGreenUpdatePolicy"]["MaximumExecutionTimeoutInSeconds"] = 7200
    assert 7200 <= max_update_seconds(linear) < 4 * 3600


def test_blue_green_does_not_import_the_service():
    import subprocess
    import sys

    code = (
        "import sys; import include.pipeline.targets.local.endpoint.blue_green; "
        "print('include.pipeline.targets.local.endpoint.service' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
