"""Registry request builders: valid for botocore, identical to what the provider operator sends."""

from __future__ import annotations

import io
import re
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from include.pipeline import registry_cli
from include.pipeline.requests import deployment
from include.pipeline.requests import registry as rq
from include.pipeline.tasks import registry as registry_task
from tests.aws_model import assert_valid

REGION = "us-east-1"


def _kwargs(**overrides) -> dict:
    args = {
        "model_name": "reviews-sentiment",
        "image_uri": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310",
        "model_url": "s3://reviews-pipeline/runs/manual__1/train/output/model.tar.gz",
        "evaluation_uri": "s3://reviews-pipeline/runs/manual__1/evaluate/evaluation.json",
        "bias_report_uri": "s3://reviews-pipeline/runs/manual__1/bias/analysis.json",
        "data_hash": "9f2c1e",
        "hyperparameters": {"epochs": 1, "learning_rate": 2e-5, "max_seq_length": 64},
        "image_uris": {"training": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pt-train:2.1"},
        "code_version": "0123abc",
        "environment": deployment.container_environment(REGION),
    }
    return rq.register_model_version_kwargs(**(args | overrides))


@pytest.fixture()
def moto_endpoint(monkeypatch):
    """A real moto server on 127.0.0.1; boto3 reaches it through AWS_ENDPOINT_URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield url
    server.stop()


def test_register_requests_validate_against_botocore():
    kwargs = _kwargs()
    assert_valid(
        "sagemaker", "CreateModelPackageGroup", rq.create_model_package_group_request(kwargs)
    )
    request = rq.create_model_package_request(kwargs)
    assert_valid("sagemaker", "CreateModelPackage", request)
    assert request["ModelApprovalStatus"] == "PendingManualApproval"
    assert request["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].endswith(
        "evaluation.json"
    )
    assert request["ModelMetrics"]["Bias"]["PreTrainingReport"]["S3Uri"].endswith("analysis.json")
    assert request["InferenceSpecification"]["SupportedContentTypes"] == ["application/json"]


def test_review_requests_validate_against_botocore():
    arn = "arn:aws:sagemaker:us-east-1:000000000000:model-package/reviews-sentiment/3"
    approve = rq.update_model_package_request(arn, "Approved", "accuracy 0.71 >= 0.6")
    assert_valid("sagemaker", "UpdateModelPackage", approve)
    assert approve["ApprovalDescription"] == "accuracy 0.71 >= 0.6"
    assert_valid(
        "sagemaker", "UpdateModelPackage", rq.update_model_package_request(arn, "Rejected")
    )
    listing = rq.list_model_packages_request("reviews-sentiment", "Approved")
    assert_valid("sagemaker", "ListModelPackages", listing)
    assert listing["ModelApprovalStatus"] == "Approved"
    assert_valid("sagemaker", "DescribeModelPackage", rq.describe_model_package_request(arn))
    assert_valid("sagemaker", "ListModelPackageGroups", rq.list_model_package_groups_request())
    with pytest.raises(ValueError, match="'Accepted'"):
        rq.update_model_package_request(arn, "Accepted")


def test_approval_param_sets_the_status_and_bad_values_are_refused():
    from airflow.providers.amazon.aws.utils.sagemaker import ApprovalStatus

    kwargs = _kwargs(model_approval="Approved")
    assert kwargs["model_approval"] is ApprovalStatus.APPROVED
    assert rq.create_model_package_request(kwargs)["ModelApprovalStatus"] == "Approved"
    with pytest.raises(ValueError, match="'approved'"):
        _kwargs(model_approval="approved")
    with pytest.raises(ValueError, match="model.tar.gz"):
        _kwargs(model_url="s3://reviews-pipeline/runs/x/model/")
    with pytest.raises(ValueError, match="package group"):
        _kwargs(model_name="--")


def test_lineage_is_flat_strings_within_aws_limits():
    props = rq.lineage(
        data_hash="abc123",
        hyperparameters={"epochs": 2, "learning_rate": 3e-5, "freeze_bert_layer": False},
        image_uris={"inference": "img:1"},
        code_version="0123abc",
    )
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in props.items())
    assert props["data_hash"] == "abc123"
    assert props["hp.epochs"] == "2" and props["hp.freeze_bert_layer"] == "False"
    assert props["image.inference"] == "img:1"
    assert props["pkg.torch"] != "" and props["pkg.apache-airflow"].startswith("3.")
    assert props["code_version"] == "0123abc"
    assert "split.seed" not in props  # recorded when given
    split = rq.split_lineage(42, {"test": 0.05, "train": 0.9, "validation": 0.05})
    assert split == {"split.seed": "42", "split.fractions": "train=0.9 validation=0.05 test=0.05"}
    props = rq.lineage(
        data_hash="h", hyperparameters={}, image_uris={}, code_version="v", split=split
    )
    assert {k: props[k] for k in rq.SPLIT_KEYS} == split
    assert len(props) <= 50
    assert all(len(k) <= 128 and len(v) <= 256 for k, v in props.items())


def test_code_version_is_the_checkout_commit_unless_overridden(monkeypatch):
    """Resolved on the Airflow side (tasks/registry.py), passed into the pure builder."""
    monkeypatch.delenv("PIPELINE_CODE_VERSION", raising=False)
    found = registry_task.code_version()
    assert found == "unknown" or re.fullmatch(r"[0-9a-f]{40}", found)
    monkeypatch.setenv("PIPELINE_CODE_VERSION", "0123abc")
    assert registry_task.code_version() == "0123abc"


def test_the_pure_registry_builder_runs_no_subprocess():
    source = Path(rq.__file__).read_text()
    assert "subprocess" not in source and "os.environ" not in source


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"layers": [1, 2]}, r"hp\.layers.*contains"),
        ({"notes": "x" * 300}, r"hp\.notes.*1 to 256"),
        ({f"p{i}": i for i in range(60)}, "AWS allows 1 to 50"),
    ],
)
def test_lineage_refuses_what_aws_would(hyperparameters, message):
    with pytest.raises(ValueError, match=message):
        rq.lineage(data_hash="h", hyperparameters=hyperparameters, image_uris={}, code_version="v")


def test_requests_equal_what_the_provider_operator_sends(moto_endpoint):
    """Run the aws target's operator (the provider's, extended) against moto and capture the
    boto3 parameters it sends."""
    from include.pipeline.targets.aws.operators import SageMakerRegisterModelVersionOperator

    kwargs = _kwargs()
    operator = SageMakerRegisterModelVersionOperator(
        task_id="register", aws_conn_id=None, region_name=REGION, **kwargs
    )
    sent: dict[str, list[dict]] = {}

    def capture(params, model, **_):
        sent.setdefault(model.name, []).append(dict(params))

    operator.hook.conn.meta.events.register("provide-client-params.sagemaker.*", capture)
    arn = operator.execute(context={})

    assert sent["CreateModelPackageGroup"][0] == rq.create_model_package_group_request(kwargs)
    assert sent["CreateModelPackage"] == [rq.create_model_package_request(kwargs)]
    client = boto3.client("sagemaker", region_name=REGION)
    group = client.describe_model_package_group(ModelPackageGroupName="reviews-sentiment")
    assert group["ModelPackageGroupDescription"] == kwargs["package_group_desc"]
    described = client.describe_model_package(ModelPackageName=arn)
    container = described["InferenceSpecification"]["Containers"][0]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert described["ModelPackageGroupName"] == "reviews-sentiment"
    assert described["CustomerMetadataProperties"]["data_hash"] == "9f2c1e"
    assert described["ModelApprovalStatus"] == "PendingManualApproval"


def test_cli_on_aws_target_sends_the_same_requests(moto_endpoint, monkeypatch):
    monkeypatch.setenv("PIPELINE_TARGET", "aws")
    monkeypatch.setenv("PIPELINE_REGION", REGION)
    kwargs = _kwargs()
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_model_package_group(**rq.create_model_package_group_request(kwargs))
    arn = client.create_model_package(**rq.create_model_package_request(kwargs))["ModelPackageArn"]

    out = io.StringIO()
    assert registry_cli.main(["list", "reviews-sentiment"], out=out) == 0
    assert arn in out.getvalue() and "PendingManualApproval" in out.getvalue()

    out = io.StringIO()
    assert registry_cli.main(["approve", arn, "--note", "looks good"], out=out) == 0
    assert "Approved" in out.getvalue()
    described = client.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "looks good"
