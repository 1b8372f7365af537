"""A real moto server on loopback, and the environment that points Airflow's AWS connection at it."""

from __future__ import annotations

import json
import socket
import urllib.request
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_client(service: str, url: str, **options):
    """A boto3 client of a server on loopback at ``url`` (moto, or a local endpoint host), with
    test credentials whatever the environment holds; ``options``: boto3.client's others."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        **options,
    )


@contextmanager
def moto_server():
    """Yield (endpoint_url, env) for a moto server that lives as long as the block."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    # moto keeps its state per process: start every server from an empty account.
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {"conn_type": "aws", "extra": {"endpoint_url": url, "region_name": "us-east-1"}}
        ),
    }
    try:
        yield url, env
    finally:
        server.stop()


def serving_endpoint(sagemaker, config_name: str) -> None:
    """The endpoint ``reviews`` of model ``m-1`` on ``config_name``, one of the two single-variant
    configs ``c-old`` and ``c-new`` (an update's before and after)."""
    sagemaker.create_model(
        ModelName="m-1",
        PrimaryContainer={
            "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6-cpu-py312",
            "ModelDataUrl": "s3://reviews-bucket/model.tar.gz",
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
    )
    for name in ("c-old", "c-new"):
        sagemaker.create_endpoint_config(**one_variant_config(name))
    sagemaker.create_endpoint(EndpointName="reviews", EndpointConfigName=config_name)


def one_variant_config(config_name: str) -> dict:
    """The pipeline's CreateEndpointConfig of model ``m-1`` on one AllTraffic variant."""
    from include.pipeline.requests import deployment

    return deployment.endpoint_config_request(
        config_name=config_name,
        variants=[
            deployment.production_variant(
                variant_name="AllTraffic", model_name="m-1", instance_type="ml.m5.xlarge"
            )
        ],
    )
