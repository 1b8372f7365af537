"""Network and encryption settings reach every SageMaker request that takes them.

Each request builder is built with every setting on; botocore's input shape of its operation
says where VpcConfig, KMS keys and network isolation can go, and each such place must be set
(or be listed below with the reason it is not), so a builder that forgets fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from botocore.model import ListShape, StructureShape

from include.pipeline import settings as pipeline_settings
from include.pipeline.requests import (
    automl,
    bias,
    blazingtext,
    deployment,
    evaluation,
    features,
    human_review,
    monitoring,
    network,
    text_preparation,
    training,
    transform,
    tuning,
)
from tests.aws_model import _session, assert_valid
from tests.provider_hooks import create_auto_ml_job_sends

SUBNETS = "subnet-0a1b2c3d,subnet-0e1f2a3b"
GROUPS = "sg-0123abcd"
VOLUME_KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OUTPUT_KEY = "arn:aws:kms:us-east-1:111122223333:alias/pipeline-output"
ALL_ON = {
    "PIPELINE_TARGET": "aws",
    "PIPELINE_VPC_SUBNETS": SUBNETS,
    "PIPELINE_VPC_SECURITY_GROUPS": GROUPS,
    "PIPELINE_NETWORK_ISOLATION": "true",
    "PIPELINE_VOLUME_KMS_KEY": VOLUME_KEY,
    "PIPELINE_OUTPUT_KMS_KEY": OUTPUT_KEY,
}
ROLE = "arn:aws:iam::111122223333:role/SageMakerExecutionRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-cpu-py312"
S3 = "s3://bkt/runs/r1"
EBS_INSTANCE = "ml.m5.xlarge"

# Places the shape has that these requests leave unset on purpose.
NOT_SET = {
    ("CreateEndpointConfig", "VpcConfig"): "inference components only: the models carry it",
    ("CreateEndpointConfig", "EnableNetworkIsolation"): "inference components only",
}
WATCHED = ("VpcConfig", "KmsKeyId", "VolumeKmsKeyId", "EnableNetworkIsolation")
# Optional structures that exist only to hold the watched fields: walked even when absent.
HOLDERS = ("NetworkConfig", "SecurityConfig")


def _job(settings) -> dict:
    """What every job request here is built with besides its data."""
    return {
        "job_name": "job-1",
        "role_arn": ROLE,
        "image_uri": IMAGE,
        "instance_type": EBS_INSTANCE,
        "settings": settings,
    }


def _script_job(settings) -> dict:
    return {**_job(settings), "region": "us-east-1", "code_uri": f"{S3}/code"}


def _training(settings, instance_type=EBS_INSTANCE) -> dict:
    return training.training_job_request(
        job_name="train-1",
        role_arn=ROLE,
        region="us-east-1",
        image_uri=IMAGE,
        code_uri=f"{S3}/sourcedir.tar.gz",
        train_uri=f"{S3}/train",
        validation_uri=f"{S3}/validation",
        output_uri=f"{S3}/training",
        checkpoint_uri=f"{S3}/checkpoints",
        hyperparameters=training.hyperparameters("aws", "roberta-base"),
        managed_rules=False,
        instance_type=instance_type,
        rule_image_uri=IMAGE,
        settings=settings,
    )


def _model(settings, **overrides) -> dict:
    """A CreateModel request for one model archive; ``overrides`` make the other kinds."""
    return deployment.model_request(
        **{
            "model_name": "m",
            "image_uri": IMAGE,
            "model_data_url": f"{S3}/model.tar.gz",
            "role_arn": ROLE,
            "region": "us-east-1",
            "settings": settings,
        }
        | overrides
    )


_CANDIDATE = {
    "InferenceContainers": [
        {
            "Image": IMAGE,
            "ModelDataUrl": f"{S3}/automl/model.tar.gz",
            "Environment": {"SAGEMAKER_INFERENCE_SUPPORTED": automl.INFERENCE_OUTPUT},
        }
    ]
}

# (operation, the network.ISOLATION job or None, build(settings) -> request)
BUILDERS = {
    "prepare": (
        "CreateProcessingJob",
        "prepare",
        lambda s: features.prepare_job_request(
            input_uri=f"{S3}/raw",
            output_uri=f"{S3}/features",
            params={
                "train_split_percentage": 0.9,
                "validation_split_percentage": 0.05,
                "test_split_percentage": 0.05,
                "balance_mode": "none",
                "max_seq_length": 128,
                "pretrained_model": "roberta-base",
            },
            feature_group_name="reviews",
            **_script_job(s),
        ),
    ),
    "prepare_text": (
        "CreateProcessingJob",
        "prepare_text",
        lambda s: text_preparation.text_preparation_request(
            split_uris={"train": f"{S3}/train"}, output_uri=f"{S3}/text", **_script_job(s)
        ),
    ),
    "evaluate": (
        "CreateProcessingJob",
        "evaluate",
        lambda s: evaluation.evaluation_job_request(
            model_uri=f"{S3}/model.tar.gz",
            test_uri=f"{S3}/test",
            output_uri=f"{S3}/evaluation",
            model_kind="finetune",
            **_script_job(s),
        ),
    ),
    "monitor-baseline": (
        "CreateProcessingJob",
        "monitor-baseline",
        lambda s: monitoring.baseline_job_request(
            dataset_uri=f"{S3}/data",
            model_uri=f"{S3}/model.tar.gz",
            output_uri=f"{S3}/baseline",
            **_script_job(s),
        ),
    ),
    "monitor": (
        "CreateProcessingJob",
        "monitor",
        lambda s: monitoring.monitoring_job_request(
            capture_uris=[f"{S3}/capture/0"],
            baseline_uri=f"{S3}/baseline",
            min_records=10,
            output_uri=f"{S3}/report",
            **_script_job(s),
        ),
    ),
    "clarify": (
        "CreateProcessingJob",
        "clarify",
        lambda s: bias.bias_job_request(
            job_name="bias-1",
            role_arn=ROLE,
            region="us-east-1",
            config_uri=f"{S3}/analysis_config.json",
            dataset_uri=f"{S3}/data.csv",
            output_uri=f"{S3}/bias",
            settings=s,
        ),
    ),
    "train": ("CreateTrainingJob", "train", _training),
    "tune": (
        "CreateHyperParameterTuningJob",
        "train",
        lambda s: tuning.tuning_job_request(job_name="tune-1", training_request=_training(s)),
    ),
    "blazingtext": (
        "CreateTrainingJob",
        "blazingtext-training",
        lambda s: blazingtext.blazingtext_training_request(
            train_uri=f"{S3}/train",
            validation_uri=f"{S3}/validation",
            output_uri=f"{S3}/bt",
            **_job(s),
        ),
    ),
    "transform": (
        "CreateTransformJob",
        None,
        lambda s: transform.transform_job_request(
            job_name="score-1",
            model_name="m",
            input_uri=f"{S3}/in",
            output_uri=f"{S3}/out",
            settings=s,
        ),
    ),
    "finetune-model": (
        "CreateModel",
        "finetune-model",
        _model,
    ),
    "blazingtext-model": (
        "CreateModel",
        "blazingtext-model",
        lambda s: _model(s, script_mode=False, network_job="blazingtext-model"),
    ),
    "autopilot-model": (
        "CreateModel",
        "autopilot-model",
        lambda s: automl.candidate_model_request(
            model_name="m", role_arn=ROLE, candidate=_CANDIDATE, settings=s
        ),
    ),
    "pipeline-model": (
        "CreateModel",
        "autopilot-model",
        lambda s: _model(
            s,
            image_uri="",
            model_data_url="",
            containers=_CANDIDATE["InferenceContainers"] * 2,
            network_job="autopilot-model",
        ),
    ),
    "endpoint-config": (
        "CreateEndpointConfig",
        None,
        lambda s: deployment.endpoint_config_request(
            config_name="c",
            variants=deployment.strategy_variants(
                "all_at_once", challenger={"model_name": "m", "instance_type": EBS_INSTANCE}
            )[0],
            data_capture=deployment.data_capture_config(f"{S3}/capture"),
            settings=s,
        ),
    ),
    "automl": (
        "CreateAutoMLJob",
        None,
        lambda s: automl.automl_job_request(
            job_name="automl-1",
            role_arn=ROLE,
            input_uri=f"{S3}/automl",
            output_uri=f"{S3}/automl-out",
            settings=s,
        ),
    ),
    "feature-group": (
        "CreateFeatureGroup",
        None,
        lambda s: features.feature_group_request(
            feature_group_name="reviews",
            role_arn=ROLE,
            offline_store_uri=f"{S3}/feature-store",
            online_store=True,
            settings=s,
        ),
    ),
    "model-monitor": (
        "CreateDataQualityJobDefinition",
        "model-monitor",
        lambda s: monitoring.data_quality_job_definition_request(
            name="dq",
            role_arn=ROLE,
            analyzer_image_uri=IMAGE,
            endpoint_name="e",
            baseline_uri=f"{S3}/baseline",
            output_uri=f"{S3}/reports",
            instance_type=EBS_INSTANCE,
            settings=s,
        ),
    ),
    "flow-definition": (
        "CreateFlowDefinition",
        None,
        lambda s: human_review.flow_definition_request(
            name="reviews-flow",
            role_arn=ROLE,
            human_task_ui_arn="arn:aws:sagemaker:us-east-1:111122223333:human-task-ui/ui",
            workteam_arn="arn:aws:sagemaker:us-east-1:111122223333:workteam/private-crowd/t",
            output_uri=f"{S3}/loops",
            settings=s,
        ),
    ),
}


def _all_on():
    return pipeline_settings.load(ALL_ON)


def _places(shape: StructureShape, value: dict, path: tuple = ()):
    """Paths of the watched fields the shape offers within what the request fills in (and
    within the holders of those fields, filled in or not)."""
    for name, member in shape.members.items():
        here = (*path, name)
        if name in WATCHED:
            yield here
        elif isinstance(member, StructureShape) and (name in value or name in HOLDERS):
            yield from _places(member, value.get(name) or {}, here)
        elif isinstance(member, ListShape) and isinstance(member.member, StructureShape):
            for item in value.get(name) or []:
                yield from _places(member.member, item, (*here, "[]"))


def _get(request: dict, path: tuple):
    values = [request]
    for key in path:
        if key == "[]":
            values = [item for v in values for item in v]
        else:
            values = [v[key] for v in values if isinstance(v, dict) and key in v]
    return values


def _watched_keys(value) -> set[str]:
    if isinstance(value, dict):
        found = {k for k in value if k in WATCHED}
        return found.union(*(_watched_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_watched_keys(v) for v in value))
    return set()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_request_takes_the_network_and_keys_where_its_shape_has_them(name):
    operation, job, build = BUILDERS[name]
    request = build(_all_on())
    assert_valid("sagemaker", operation, request)
    shape = _session.get_service_model("sagemaker").operation_model(operation).input_shape
    places = list(_places(shape, request))
    assert places, f"{operation}: no VpcConfig or KMS field found in its shape"
    for path in places:
        values = _get(request, path)
        field = path[-1]
        if (operation, ".".join(path)) in NOT_SET:
            assert not values, f"{name}: {'.'.join(path)} should stay unset"
        elif field == "EnableNetworkIsolation":
            # (c) only the jobs the docs' table allows run isolated
            allowed = network.ISOLATION[job][0]
            assert values == ([True] if allowed else []), f"{name}: {'.'.join(path)} {values}"
        else:
            expected = {
                "VpcConfig": {"Subnets": SUBNETS.split(","), "SecurityGroupIds": [GROUPS]},
                "VolumeKmsKeyId": VOLUME_KEY,
                "KmsKeyId": OUTPUT_KEY,
            }[field]
            if field == "KmsKeyId" and operation == "CreateEndpointConfig" and len(path) == 1:
                expected = VOLUME_KEY  # the endpoint's volume key
            assert values and all(v == expected for v in values), (
                f"{name}: {'.'.join(path)} is {values}, expected {expected}"
            )


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_with_the_settings_off_requests_are_unchanged(name):
    operation, _, build = BUILDERS[name]
    unset = build(None)
    assert build(pipeline_settings.load({})) == unset
    assert build(pipeline_settings.load({"PIPELINE_TARGET": "aws"})) == unset
    assert _watched_keys(unset) == set(), f"{name}: {_watched_keys(unset)} without settings"
    assert "NetworkConfig" not in unset and "SecurityConfig" not in str(unset)
    assert_valid("sagemaker", operation, unset)


def test_isolation_stays_off_when_the_setting_is_off():
    settings = pipeline_settings.load({**ALL_ON, "PIPELINE_NETWORK_ISOLATION": "false"})
    for name, (_, _, build) in BUILDERS.items():
        request = build(settings)
        assert "EnableNetworkIsolation" not in _watched_keys(request), name


def test_every_isolation_job_is_in_the_docs_table():
    """docs/aws.md's table says the same as network.ISOLATION, job by job."""
    text = (pipeline_settings.REPO_ROOT / "docs" / "aws.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z_-]+)` \| (yes|no) \|", text, flags=re.MULTILINE))
    assert rows == {job: "yes" if ok else "no" for job, (ok, _) in network.ISOLATION.items()}


def test_an_unlisted_job_must_say_whether_it_needs_egress():
    with pytest.raises(ValueError, match="network.ISOLATION"):
        network.isolated(_all_on(), "new-job")


@pytest.mark.parametrize("instance_type", ["ml.g4dn.xlarge", "ml.p4d.24xlarge", "ml.g5.xlarge"])
def test_no_volume_key_on_instances_with_instance_storage(instance_type):
    """AWS refuses a training, processing or transform volume key on NVMe instance storage."""
    request = _training(_all_on(), instance_type)
    assert "VolumeKmsKeyId" not in request["ResourceConfig"]
    assert request["OutputDataConfig"]["KmsKeyId"] == OUTPUT_KEY
    assert_valid("sagemaker", "CreateTrainingJob", request)


def test_ebs_instance_types_have_no_instance_storage():
    for instance_type in ("ml.m5.xlarge", "ml.c5.2xlarge", "ml.p3.2xlarge", "ml.g6e.xlarge"):
        assert network.has_instance_storage(instance_type) is (instance_type == "ml.g6e.xlarge")


def test_automl_operator_arguments_keep_the_output_key():
    """SageMakerAutoMLOperator rebuilds OutputDataConfig from s3_output; the extras restore it."""
    request = BUILDERS["automl"][2](_all_on())
    sent = create_auto_ml_job_sends(automl.operator_arguments(request))
    assert sent == request and sent["OutputDataConfig"]["KmsKeyId"] == OUTPUT_KEY


def test_the_optional_policy_is_documented():
    policy = Path(pipeline_settings.REPO_ROOT / "deploy/iam/sagemaker-execution-role-vpc-kms.json")
    assert policy.name in (pipeline_settings.REPO_ROOT / "docs" / "aws.md").read_text()


def test_the_local_engines_accept_the_requests_with_every_setting_on(tmp_path):
    """Locally the settings are harmless: the model, endpoint config and feature group engines
    store the same requests (the fields they do not emulate ride along)."""
    from include.pipeline.targets.local.endpoint import models
    from include.pipeline.targets.local.endpoint.state import EndpointStore
    from include.pipeline.targets.local.featurestore import store as feature_store

    settings = _all_on()
    model = BUILDERS["finetune-model"][2](settings)
    assert models.create_model(model, tmp_path)["ModelArn"].endswith(":model/m")
    assert models.describe_model("m", tmp_path)["VpcConfig"] == network.vpc_config(settings)
    config = BUILDERS["endpoint-config"][2](settings)
    assert EndpointStore(tmp_path).create_config(config)["EndpointConfigArn"]
    group = BUILDERS["feature-group"][2](settings)
    described = feature_store.create_feature_group(group, tmp_path)
    assert described["FeatureGroupName"] == "reviews"
