"""The local Model Registry (DuckDB) and its CLI, driven by the same requests as on AWS."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import botocore.session
import pytest

from include.pipeline import registry_cli
from include.pipeline.requests import registry as rq
from include.pipeline.targets.local.sagemaker import registry as reg
from tests.conftest import run_captured

REPO = Path(__file__).resolve().parents[1]
GROUP = "reviews-sentiment"


def _kwargs(run: str = "manual__1", **overrides) -> dict:
    args = {
        "model_name": GROUP,
        "image_uri": "pytorch-inference:local",
        "model_url": f"s3://reviews-pipeline/runs/{run}/train/model.tar.gz",
        "evaluation_uri": f"s3://reviews-pipeline/runs/{run}/evaluate/evaluation.json",
        "bias_report_uri": f"s3://reviews-pipeline/runs/{run}/bias/analysis.json",
        "data_hash": f"hash-{run}",
        "hyperparameters": {"epochs": 1, "learning_rate": 2e-5},
        "code_version": "0123abc",
    }
    return rq.register_model_version_kwargs(**(args | overrides))


def _register(lake: Path, run: str = "manual__1", **overrides) -> str:
    kwargs = _kwargs(run, **overrides)
    return reg.register_model_version(
        rq.create_model_package_group_request(kwargs), rq.create_model_package_request(kwargs), lake
    )


def test_registration_creates_a_version_with_metrics_and_lineage(tmp_path):
    arn = _register(tmp_path)
    assert arn == f"arn:aws:sagemaker:us-east-1:000000000000:model-package/{GROUP}/1"
    assert reg.db_path(tmp_path).is_file()
    described = reg.describe_model_package(arn, tmp_path)
    assert described["ModelPackageVersion"] == 1
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == (
        "s3://reviews-pipeline/runs/manual__1/evaluate/evaluation.json"
    )
    assert described["ModelMetrics"]["Bias"]["PreTrainingReport"]["S3Uri"].endswith(
        "bias/analysis.json"
    )
    lineage = described["CustomerMetadataProperties"]
    assert lineage["data_hash"] == "hash-manual__1"
    assert lineage["hp.learning_rate"] == "2e-05"
    assert lineage["image.inference"] == "pytorch-inference:local"
    assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"].endswith(
        "manual__1/train/model.tar.gz"
    )
    assert described["CreationTime"].tzinfo is not None


def test_describe_has_the_aws_response_shape(tmp_path):
    """Every key the local describe returns exists in DescribeModelPackage's output shape."""
    arn = _register(tmp_path)
    model = botocore.session.get_session().get_service_model("sagemaker")
    allowed = set(model.operation_model("DescribeModelPackage").output_shape.members)
    described = reg.describe_model_package(arn, tmp_path)
    assert set(described) <= allowed
    listed = reg.list_model_packages(GROUP, tmp_path)["ModelPackageSummaryList"]
    summary = model.operation_model("ListModelPackages").output_shape.members
    assert set(listed[0]) <= set(summary["ModelPackageSummaryList"].member.members)


def test_reregistering_returns_the_same_version(tmp_path):
    first = _register(tmp_path)
    assert _register(tmp_path) == first
    second = _register(tmp_path, run="manual__2")
    assert second.endswith(f"/{GROUP}/2")
    versions = reg.list_model_packages(GROUP, tmp_path)["ModelPackageSummaryList"]
    assert [v["ModelPackageVersion"] for v in versions] == [1, 2]
    assert len(reg.list_model_package_groups(tmp_path)["ModelPackageGroupSummaryList"]) == 1


def test_without_client_token_same_model_and_metadata_is_deduplicated(tmp_path):
    kwargs = _kwargs()
    del kwargs["extras"]["ClientToken"]
    reg.create_model_package_group(rq.create_model_package_group_request(kwargs), tmp_path)
    request = rq.create_model_package_request(kwargs)
    first = reg.create_model_package(request, tmp_path)["ModelPackageArn"]
    assert reg.create_model_package(request, tmp_path)["ModelPackageArn"] == first
    changed = request | {"CustomerMetadataProperties": {"data_hash": "other"}}
    assert reg.create_model_package(changed, tmp_path)["ModelPackageArn"].endswith("/2")


def test_reused_client_token_with_another_model_is_refused(tmp_path):
    kwargs = _kwargs()
    _register(tmp_path)
    request = rq.create_model_package_request(kwargs)
    request["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] = "s3://b/other/model.tar.gz"
    with pytest.raises(reg.RegistryError, match="ClientToken"):
        reg.create_model_package(request, tmp_path)


def test_approval_changes_status_and_latest_approved(tmp_path):
    v1, v2 = _register(tmp_path), _register(tmp_path, run="manual__2")
    assert reg.latest_approved(GROUP, tmp_path) is None
    reg.update_model_package(rq.update_model_package_request(v1, "Approved", "ok"), tmp_path)
    reg.update_model_package(rq.update_model_package_request(v2, "Rejected", "bias"), tmp_path)
    described = reg.describe_model_package(v1, tmp_path)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "ok"
    assert described["LastModifiedTime"] >= described["CreationTime"]
    assert reg.latest_approved(GROUP, tmp_path)["ModelPackageArn"] == v1
    reg.update_model_package(rq.update_model_package_request(v2, "Approved"), tmp_path)
    assert reg.latest_approved(GROUP, tmp_path)["ModelPackageArn"] == v2
    rejected = reg.list_model_packages(GROUP, tmp_path, approval_status="Rejected")
    assert rejected["ModelPackageSummaryList"] == []


def test_registration_as_approved_by_param(tmp_path):
    arn = _register(tmp_path, model_approval="Approved")
    assert reg.latest_approved(GROUP, tmp_path)["ModelPackageArn"] == arn


def test_bad_requests_give_clear_errors(tmp_path):
    arn = _register(tmp_path)
    missing = arn.replace("/1", "/9")
    with pytest.raises(reg.RegistryError, match="model-package/reviews-sentiment/9 does not exist"):
        reg.describe_model_package(missing, tmp_path)
    with pytest.raises(reg.RegistryError, match="does not exist"):
        reg.update_model_package(
            {"ModelPackageArn": missing, "ModelApprovalStatus": "Approved"}, tmp_path
        )
    with pytest.raises(reg.RegistryError, match="'Done'"):
        reg.update_model_package({"ModelPackageArn": arn, "ModelApprovalStatus": "Done"}, tmp_path)
    with pytest.raises(reg.ModelPackageGroupExists, match="already exists"):
        reg.create_model_package_group({"ModelPackageGroupName": GROUP}, tmp_path)
    request = rq.create_model_package_request(_kwargs()) | {"ModelPackageGroupName": "nope"}
    with pytest.raises(reg.RegistryError, match="Group does not exist: nope"):
        reg.create_model_package(request, tmp_path)


def test_failed_version_rolls_back_a_new_group(tmp_path):
    kwargs = _kwargs()
    bad = rq.create_model_package_request(kwargs) | {"ModelApprovalStatus": "Maybe"}
    with pytest.raises(reg.RegistryError):
        reg.register_model_version(rq.create_model_package_group_request(kwargs), bad, tmp_path)
    assert reg.list_model_package_groups(tmp_path)["ModelPackageGroupSummaryList"] == []


_WRITER = """
import sys
from pathlib import Path
from include.pipeline.targets.local.sagemaker import registry as reg
lake, name = Path(sys.argv[1]), sys.argv[2]
for i in range(4):
    request = {
        "ModelPackageGroupName": "g",
        "InferenceSpecification": {"Containers": [
            {"Image": "i", "ModelDataUrl": f"s3://b/{name}/{i}/model.tar.gz"}]},
    }
    print(reg.create_model_package(request, lake)["ModelPackageArn"])
"""


def test_two_processes_registering_at_once_get_distinct_versions(tmp_path):
    reg.create_model_package_group({"ModelPackageGroupName": "g"}, tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), name],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    arns = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        arns += out.split()
    assert len(arns) == len(set(arns)) == 8
    versions = reg.list_model_packages("g", tmp_path)["ModelPackageSummaryList"]
    assert sorted(v["ModelPackageVersion"] for v in versions) == list(range(1, 9))


def test_a_call_waits_while_another_process_holds_the_lock(tmp_path):
    arn = _register(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(1.5)",
            str(reg.db_path(tmp_path)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        reg.update_model_package(
            {"ModelPackageArn": arn, "ModelApprovalStatus": "Approved"}, tmp_path
        )
    finally:
        holder.wait(timeout=60)
    assert reg.describe_model_package(arn, tmp_path)["ModelApprovalStatus"] == "Approved"


def test_cli_lists_describes_and_reviews(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_TARGET", "local")
    arn = _register(tmp_path)

    def run(*argv: str) -> str:
        out = io.StringIO()
        assert registry_cli.main(["--lake", str(tmp_path), *argv], out=out) == 0
        return out.getvalue()

    groups = run("groups")
    assert groups.splitlines()[0].split() == ["GROUP", "CREATED", "DESCRIPTION"]
    assert GROUP in groups
    listing = run("list", GROUP)
    assert arn in listing and "PendingManualApproval" in listing
    described = run("describe", arn)
    assert "hash-manual__1" in described and "evaluation.json" in described
    assert run("reject", arn, "--note", "too biased").strip() == f"{arn} -> Rejected"
    assert reg.describe_model_package(arn, tmp_path)["ApprovalDescription"] == "too biased"
    assert "Rejected" in run("list", GROUP, "--status", "Rejected")


def test_cli_module_entry_point_approves(tmp_path):
    arn = _register(tmp_path)
    env = os.environ | {"PIPELINE_TARGET": "local", "PIPELINE_LAKE": str(tmp_path)}
    done = run_captured(
        [sys.executable, "-m", "include.pipeline.registry_cli", "approve", arn, "--note", "ok"],
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "Approved" in done.stdout
    assert reg.describe_model_package(arn, tmp_path)["ModelApprovalStatus"] == "Approved"
    missing = run_captured(
        [sys.executable, "-m", "include.pipeline.registry_cli", "describe", arn + "0"],
        env=env,
    )
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
