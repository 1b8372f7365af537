"""Network and encryption of SageMaker requests: the one place that maps the settings
(``PIPELINE_VPC_*``, ``PIPELINE_NETWORK_ISOLATION``, ``PIPELINE_*_KMS_KEY``) onto request fields.

Every request builder that creates compute or stores data asks these functions with the
settings it was given (None: no settings, the request as before), so a new builder takes the
same VPC, keys and isolation rule. Each returns nothing when its setting is off: AWS rejects an
empty ``VpcConfig`` or ``KmsKeyId``.
"""

from __future__ import annotations

import re

from include.pipeline.settings import Settings

# Which jobs may run with EnableNetworkIsolation: (isolated, why). A job that pip-installs its
# requirements, downloads a model or calls an AWS API at run time needs egress, so it never gets
# isolation even when PIPELINE_NETWORK_ISOLATION is on. docs/aws.md shows this table.
ISOLATION: dict[str, tuple[bool, str]] = {
    "prepare": (
        False,
        "prepare.py pip-installs requirements.txt where the image lacks transformers, downloads "
        "the pretrained tokenizer from the Hugging Face Hub and calls Feature Store PutRecord",
    ),
    "prepare_text": (True, "prepare_text.py uses the standard library on its mounted folders"),
    "evaluate": (
        False,
        "evaluate.py pip-installs requirements.txt (or requirements-blazingtext.txt, "
        "scikit-learn) into the processing image",
    ),
    "monitor-baseline": (
        False,
        "monitor.py's baseline mode scores the model and pip-installs transformers first",
    ),
    "monitor": (True, "monitor.py's monitor mode runs on the standard library alone"),
    "clarify": (
        True,
        "Clarify's bias analysis reads the mounted dataset and config, no model endpoint",
    ),
    "train": (
        False,
        "the training toolkit pip-installs requirements.txt from the source dir before "
        "train.py starts, and train.py downloads the pretrained model from the Hugging Face Hub",
    ),
    "blazingtext-training": (True, "a built-in algorithm on the mounted channels"),
    "finetune-model": (
        False,
        "the inference toolkit pip-installs the archive's code/requirements.txt at start",
    ),
    "blazingtext-model": (True, "the built-in algorithm's serving container"),
    "autopilot-model": (
        False,
        "Autopilot's inference containers are AWS's; left with egress rather than assumed",
    ),
    "model-monitor": (
        False,
        "Model Monitor's analyzer publishes CloudWatch metrics of each run",
    ),
}

# Instance families with NVMe instance storage: training, processing and transform refuse a
# volume key on them (the instance encrypts its local storage in hardware).
_STORAGE_FAMILIES = {"g5", "g6", "g6e", "gr6", "p5", "p5e", "p5en", "trn1", "trn1n", "trn2"}
_FAMILY = re.compile(r"^ml\.([a-z]+)(\d+)([a-z-]*)\.")


def has_instance_storage(instance_type: str) -> bool:
    """Whether an instance type has NVMe instance storage: its family's attributes hold a
    ``d`` (m5d, g4dn, p4d) or it is one of the all-NVMe families (g5, p5, trn1, ...)."""
    match = _FAMILY.match(instance_type)
    if not match:
        return False
    kind, generation, attributes = match.groups()
    return "d" in attributes or f"{kind}{generation}{attributes}" in _STORAGE_FAMILIES


def vpc_config(settings: Settings | None) -> dict | None:
    """``VpcConfig`` of the configured subnets and security groups; None without a VPC."""
    if settings is None or not settings.vpc_subnets:
        return None
    return {
        "SecurityGroupIds": list(settings.vpc_security_groups),
        "Subnets": list(settings.vpc_subnets),
    }


def volume_kms(settings: Settings | None, instance_type: str | None = None) -> str:
    """The key of the instances' storage volumes; empty on an ``instance_type`` with instance
    storage, where AWS refuses a volume key (training, processing, transform)."""
    if settings is None or (instance_type and has_instance_storage(instance_type)):
        return ""
    return settings.volume_kms_key


def output_kms(settings: Settings | None) -> str:
    """The key of what a job or store writes to S3."""
    return "" if settings is None else settings.output_kms_key


def isolated(settings: Settings | None, job: str) -> bool:
    """Whether ``job`` runs with EnableNetworkIsolation: the setting is on and the job needs no
    egress (:data:`ISOLATION`, which must name every job)."""
    if job not in ISOLATION:
        raise ValueError(f"job {job!r} is not in network.ISOLATION; say whether it needs egress")
    return bool(settings and settings.network_isolation and ISOLATION[job][0])


def with_values(target: dict, **values) -> dict:
    """``target`` with the ``values`` that are set (AWS rejects empty or null ones)."""
    target.update({k: v for k, v in values.items() if v})
    return target


def job_network(settings: Settings | None, job: str) -> dict:
    """The top-level ``VpcConfig`` / ``EnableNetworkIsolation`` of a training job or model."""
    return with_values(
        {}, VpcConfig=vpc_config(settings), EnableNetworkIsolation=isolated(settings, job)
    )


def network_config(settings: Settings | None, job: str) -> dict | None:
    """``NetworkConfig`` of a processing job or monitoring job definition; None when unset."""
    return job_network(settings, job) or None


# ---------------------------------------------------------------- where each request takes them
def processing(request: dict, settings: Settings | None, job: str) -> dict:
    """CreateProcessingJob: NetworkConfig, the cluster's volume key, the outputs' key."""
    cluster = request["ProcessingResources"]["ClusterConfig"]
    with_values(cluster, VolumeKmsKeyId=volume_kms(settings, cluster["InstanceType"]))
    with_values(request["ProcessingOutputConfig"], KmsKeyId=output_kms(settings))
    return with_values(request, NetworkConfig=network_config(settings, job))


def training(request: dict, settings: Settings | None, job: str) -> dict:
    """CreateTrainingJob: VpcConfig, isolation, the volume key, the model artifacts' key."""
    resources = request["ResourceConfig"]
    with_values(resources, VolumeKmsKeyId=volume_kms(settings, resources["InstanceType"]))
    with_values(request["OutputDataConfig"], KmsKeyId=output_kms(settings))
    return with_values(request, **job_network(settings, job))


def transform(request: dict, settings: Settings | None) -> dict:
    """CreateTransformJob: the volume key and the output's key (the model carries the VPC)."""
    resources = request["TransformResources"]
    with_values(resources, VolumeKmsKeyId=volume_kms(settings, resources["InstanceType"]))
    with_values(request["TransformOutput"], KmsKeyId=output_kms(settings))
    return request


def model(request: dict, settings: Settings | None, job: str) -> dict:
    """CreateModel: the containers' VpcConfig and isolation (endpoints and transforms of the
    model run with them)."""
    return with_values(request, **job_network(settings, job))


def endpoint_config(request: dict, settings: Settings | None) -> dict:
    """CreateEndpointConfig: the volume key. The API documents that on instance types with
    instance storage the key covers the EBS volume only (not refused, unlike training's). The
    config's own VpcConfig / EnableNetworkIsolation are for inference components, which this
    pipeline does not use: its models carry them."""
    capture = request.get("DataCaptureConfig")
    if capture:
        data_capture(capture, settings)
    return with_values(request, KmsKeyId=volume_kms(settings))


def data_capture(config: dict, settings: Settings | None) -> dict:
    """DataCaptureConfig: the captured traffic's key."""
    return with_values(config, KmsKeyId=output_kms(settings))


def automl(request: dict, settings: Settings | None) -> dict:
    """CreateAutoMLJob: the output's key and SecurityConfig (volume key, VPC, encrypted
    traffic between its containers once in a VPC)."""
    with_values(request["OutputDataConfig"], KmsKeyId=output_kms(settings))
    vpc = vpc_config(settings)
    security = with_values(
        {},
        VolumeKmsKeyId=volume_kms(settings),
        EnableInterContainerTrafficEncryption=bool(vpc),
        VpcConfig=vpc,
    )
    with_values(request["AutoMLJobConfig"], SecurityConfig=security)
    return request


def feature_group(request: dict, settings: Settings | None) -> dict:
    """CreateFeatureGroup: the offline store's S3 key and, when on, the online store's key."""
    with_values(request["OfflineStoreConfig"]["S3StorageConfig"], KmsKeyId=output_kms(settings))
    online = request["OnlineStoreConfig"]
    if online.get("EnableOnlineStore") and output_kms(settings):
        online["SecurityConfig"] = {"KmsKeyId": output_kms(settings)}
    return request


def monitoring_job_definition(request: dict, settings: Settings | None) -> dict:
    """CreateDataQualityJobDefinition: NetworkConfig, the volume key, the outputs' key."""
    cluster = request["JobResources"]["ClusterConfig"]
    with_values(cluster, VolumeKmsKeyId=volume_kms(settings, cluster["InstanceType"]))
    with_values(request["DataQualityJobOutputConfig"], KmsKeyId=output_kms(settings))
    return with_values(request, NetworkConfig=network_config(settings, "model-monitor"))


def flow_definition(request: dict, settings: Settings | None) -> dict:
    """CreateFlowDefinition: the key of the reviewers' answers in S3."""
    with_values(request["OutputConfig"], KmsKeyId=output_kms(settings))
    return request
