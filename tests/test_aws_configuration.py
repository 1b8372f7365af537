"""On aws a misconfigured run is refused by its first task, before any job is paid for: the
placeholder role, the default or a missing bucket, an input that is not there, a schedule that
would ingest the generated sample every day. moto in server mode for S3."""

from __future__ import annotations

import boto3
import pytest

from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from tests.moto_server import free_port

pytestmark = pytest.mark.aws  # the aws target's tests, with or without a moto server

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def aws(env: dict, **settings) -> targets.Target:
    return targets.load(pipeline_settings.load({**env, "PIPELINE_TARGET": "aws", **settings}))


def test_defaults_are_refused_with_every_problem_named(moto_env):
    problems = aws(moto_env).run_problems("", scheduled=True)
    assert len(problems) == 3
    role, bucket, schedule = problems
    assert "000000000000" in role and "PIPELINE_ROLE_ARN" in role
    assert "'reviews-pipeline'" in bucket and "PIPELINE_BUCKET" in bucket
    assert "generated sample" in schedule and "PIPELINE_SCHEDULE=none" in schedule


def test_a_missing_bucket_or_input_is_named(moto_env):
    target = aws(moto_env, PIPELINE_BUCKET="not-created", PIPELINE_ROLE_ARN=ROLE)
    (problem,) = target.run_problems("", scheduled=False)  # a manual try-out on the sample
    assert "'not-created'" in problem and "HeadBucket" in problem

    boto3.client("s3").create_bucket(Bucket="team-reviews")
    target = aws(moto_env, PIPELINE_BUCKET="team-reviews", PIPELINE_ROLE_ARN=ROLE)
    assert target.run_problems("s3://team-reviews/incoming/missing.csv", scheduled=True) == [
        "input_uri s3://team-reviews/incoming/missing.csv does not exist"
    ]
    boto3.client("s3").put_object(Bucket="team-reviews", Key="incoming/r.csv", Body=b"a,b\n")
    assert target.run_problems("s3://team-reviews/incoming/r.csv", scheduled=True) == []


def test_the_dag_refuses_the_run_in_its_first_task(moto_env):
    """check_configuration is upstream of everything that sends a request (after check_trigger,
    which only reads the run's asset events)."""
    from airflow.dag_processing.dagbag import DagBag

    from include.pipeline import task_ids as T
    from tests.conftest import REPO

    dag = DagBag(dag_folder=str(REPO / "dags" / "reviews_pipeline.py")).dags["reviews_pipeline"]
    check = dag.get_task(T.CHECK_CONFIGURATION)
    assert check.upstream_task_ids == {T.CHECK_TRIGGER}  # AirflowFailException: no retries
    assert T.INGEST in check.downstream_task_ids
    assert check.get_flat_relative_ids(upstream=False) >= {T.TRAIN, T.PREPARE_FEATURES}


def test_local_runs_have_nothing_to_refuse(tmp_path):
    # A free port: a user's own endpoint server on the default port (a `make demo` left up)
    # is another lake's, which the check rightly names.
    settings = pipeline_settings.Settings(lake=tmp_path, endpoint_port=free_port())
    target = targets.load(settings)
    assert target.run_problems("", scheduled=True) == []


def _quota(name: str, value: float) -> dict:
    return {
        "ServiceCode": "sagemaker",
        "QuotaName": name,
        "QuotaCode": "L-" + format(abs(hash(name)) % 10**8, "08d"),
        "Value": value,
    }


def test_sagemaker_quotas_below_what_the_run_holds_at_once_are_named():
    """Service Quotas' ListServiceQuotas, which moto lacks, through botocore's Stubber: the
    applied values override the defaults; each quota short of the run's need is named once."""
    from botocore.stub import Stubber

    from include.pipeline import candidates
    from include.pipeline.params import PARAMS
    from include.pipeline.requests import quotas as needs
    from include.pipeline.targets.aws.quotas import quota_problems

    params = {name: param.value for name, param in PARAMS.items()}
    params |= {"candidates": ["finetune", "blazingtext", "autopilot"]}
    params["deployment_strategy"] = "canary"
    needed = needs.needed(params, candidates.quotas(params["candidates"]))
    assert needed == {
        "ml.c5.2xlarge for processing job usage": 3,
        "ml.m5.xlarge for processing job usage": 4,
        "ml.g4dn.xlarge for training job usage": 1,
        "ml.c5.2xlarge for training job usage": 1,
        "ml.m5.xlarge for transform job usage": 1,
        "ml.m5.xlarge for endpoint usage": 2,  # the old and the new fleet during blue/green
    }
    assert (
        needs.needed(
            params | {"deployment_strategy": "ab"}, candidates.quotas(params["candidates"])
        )["ml.m5.xlarge for endpoint usage"]
        == 4
    )
    defaults = [_quota(name, 0.0) for name in needed if "g4dn" not in name]
    applied = [
        _quota(name, 10.0) for name in needed if "g4dn" not in name and "endpoint" not in name
    ]
    client = boto3.client("service-quotas", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("list_aws_default_service_quotas", {"Quotas": defaults})
        stub.add_response("list_service_quotas", {"Quotas": applied})
        problems = quota_problems(client, needed)
        stub.assert_no_pending_responses()
    assert problems == [
        "SageMaker has no quota 'ml.g4dn.xlarge for training job usage' in this region (the "
        "instance type is not offered here): choose another type or region",
        "SageMaker quota 'ml.m5.xlarge for endpoint usage' is 0; this run needs 2 at once: "
        "request an increase in Service Quotas",
    ]
