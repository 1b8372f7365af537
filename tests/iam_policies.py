"""The IAM policies in ``deploy/iam/`` and the IAM actions behind recorded AWS API calls."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import NamedTuple

from tests.conftest import REPO

IAM = REPO / "deploy" / "iam"
AIRFLOW_ROLE = IAM / "airflow-role.json"
EXECUTION_ROLE = IAM / "sagemaker-execution-role.json"
# optional: accounts that set the VPC or KMS settings add it to the execution role
EXECUTION_ROLE_VPC_KMS = IAM / "sagemaker-execution-role-vpc-kms.json"
PLACEHOLDERS = frozenset(
    {
        "ACCOUNT_ID",
        "REGION",
        "BUCKET",
        "PREFIX",
        "INPUT_BUCKET",
        "GLUE_DATABASE",
        "EXECUTION_ROLE_NAME",
        "ARRIVAL_QUEUE_NAME",
        "APPROVAL_QUEUE_NAME",
        "NOTIFY_TOPIC_NAME",
        "VOLUME_KMS_KEY_ID",
        "OUTPUT_KMS_KEY_ID",
    }
)
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_:]+)\}")

# IAM prefixes that differ from the botocore service name.
_PREFIX = {
    "sagemaker-runtime": "sagemaker",
    "sagemaker-featurestore-runtime": "sagemaker",
    "service-quotas": "servicequotas",
}
# S3 API operations authorized by an action of another name.
_S3 = {
    "ListObjectsV2": {"s3:ListBucket"},
    "ListObjects": {"s3:ListBucket"},
    "HeadBucket": {"s3:ListBucket"},
    "HeadObject": {"s3:GetObject"},
    "CopyObject": {"s3:GetObject", "s3:PutObject"},
    "DeleteObjects": {"s3:DeleteObject"},
    "CreateMultipartUpload": {"s3:PutObject"},
    "UploadPart": {"s3:PutObject"},
    "CompleteMultipartUpload": {"s3:PutObject"},
    "ListBuckets": {"s3:ListAllMyBuckets"},
}
_NEEDS_NO_PERMISSION = {("sts", "GetCallerIdentity")}
# What AWS checks besides the call's own action: Athena reads the catalog and S3 and writes the
# result with the caller's permissions; a request naming a role needs iam:PassRole on it.
_ATHENA_READS = {
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetPartitions",
    "s3:GetObject",
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:PutObject",
}
_PASSES_ROLE = {
    "CreateProcessingJob",
    "CreateTrainingJob",
    "CreateHyperParameterTuningJob",
    "CreateTransformJob",
    "CreateModel",
    "CreateFeatureGroup",
}


def iam_actions(service: str, operation: str) -> set[str]:
    """The IAM actions AWS authorizes for one API call (botocore service name, operation)."""
    if (service, operation) in _NEEDS_NO_PERMISSION:
        return set()
    if service == "s3" and operation in _S3:
        return set(_S3[operation])
    actions = {f"{_PREFIX.get(service, service)}:{operation}"}
    if (service, operation) == ("athena", "StartQueryExecution"):
        actions |= _ATHENA_READS
    if service == "sagemaker" and operation in _PASSES_ROLE:
        actions.add("iam:PassRole")
    return actions


def load(path: Path) -> dict:
    """A policy document; ValueError naming the file for bad JSON or an unknown placeholder."""
    text = path.read_text()
    unknown = set(_PLACEHOLDER.findall(text)) - PLACEHOLDERS
    if unknown:
        raise ValueError(f"{path}: unknown placeholders {sorted(unknown)}")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def allowed_actions(policy: dict) -> list[str]:
    """Every action pattern an Allow statement grants."""
    patterns = []
    for statement in policy["Statement"]:
        if statement["Effect"] == "Allow":
            action = statement["Action"]
            patterns += [action] if isinstance(action, str) else action
    return patterns


def missing(actions: set[str], policy: dict) -> set[str]:
    """The actions no Allow statement of ``policy`` grants (IAM matches case-insensitively)."""
    patterns = [p.lower() for p in allowed_actions(policy)]
    return {a for a in actions if not any(fnmatch.fnmatchcase(a.lower(), p) for p in patterns)}


# AWS's minimum for the role passed to CreateAutoMLJob ("CreateAutoMLJob and CreateAutoMLJobV2
# API: Execution Role Permissions" in https://docs.aws.amazon.com/sagemaker/latest/dg/
# sagemaker-roles.html), less the EC2 network-interface actions it lists for jobs in a VPC; each
# with a resource of the kind Autopilot acts on (it names its models and endpoints itself).
AUTOPILOT_MINIMUM = {
    "iam:PassRole": "arn:aws:iam::${ACCOUNT_ID}:role/${EXECUTION_ROLE_NAME}",
    "ecr:BatchCheckLayerAvailability": "arn:aws:ecr:${REGION}:683313688378:repository/sklearn",
    "ecr:BatchGetImage": "arn:aws:ecr:${REGION}:683313688378:repository/sklearn",
    "ecr:GetDownloadUrlForLayer": "arn:aws:ecr:${REGION}:683313688378:repository/sklearn",
    "ecr:GetAuthorizationToken": "*",
    "logs:CreateLogGroup": "arn:aws:logs:${REGION}:${ACCOUNT_ID}:log-group:/aws/sagemaker/x",
    "logs:CreateLogStream": "arn:aws:logs:${REGION}:${ACCOUNT_ID}:log-group:/aws/sagemaker/x",
    "logs:DescribeLogStreams": "arn:aws:logs:${REGION}:${ACCOUNT_ID}:log-group:/aws/sagemaker/x",
    "logs:GetLogEvents": "arn:aws:logs:${REGION}:${ACCOUNT_ID}:log-group:/aws/sagemaker/x",
    "logs:PutLogEvents": "arn:aws:logs:${REGION}:${ACCOUNT_ID}:log-group:/aws/sagemaker/x",
    "sagemaker:CreateModel": "arn:aws:sagemaker:${REGION}:${ACCOUNT_ID}:model/automl-x",
    "sagemaker:DescribeModel": "arn:aws:sagemaker:${REGION}:${ACCOUNT_ID}:model/automl-x",
    "sagemaker:DeleteModel": "arn:aws:sagemaker:${REGION}:${ACCOUNT_ID}:model/automl-x",
    "sagemaker:CreateEndpointConfig": (
        "arn:aws:sagemaker:${REGION}:${ACCOUNT_ID}:endpoint-config/automl-x"
    ),
    "sagemaker:DescribeEndpointConfig": (
        "arn:aws:sagemaker:${REGION}:${ACCOUNT_ID}:endpoint-config/automl-x"
    ),
    "sagemaker:DeleteEndpointConfig": (
        "arn:aws:sagemaker:${REGION}:${ACCOUNT_ID}:endpoint-config/automl-x"
    ),
    "sagemaker:CreateEndpoint": "arn:aws:sagemaker:${REGION}:${ACCOUNT_ID}:endpoint/automl-x",
    "sagemaker:DescribeEndpoint": "arn:aws:sagemaker:${REGION}:${ACCOUNT_ID}:endpoint/automl-x",
    "sagemaker:DeleteEndpoint": "arn:aws:sagemaker:${REGION}:${ACCOUNT_ID}:endpoint/automl-x",
    "sagemaker:InvokeEndpoint": "arn:aws:sagemaker:${REGION}:${ACCOUNT_ID}:endpoint/automl-x",
    "sagemaker:ListTags": "arn:aws:sagemaker:${REGION}:${ACCOUNT_ID}:automl-job/automl-x",
    "cloudwatch:PutMetricData": "*",
    "s3:GetObject": "arn:aws:s3:::${BUCKET}/runs/x/automl/data.csv",
    "s3:PutObject": "arn:aws:s3:::${BUCKET}/runs/x/automl/output/model.tar.gz",
    "s3:ListBucket": "arn:aws:s3:::${BUCKET}",
}
# Deployment guardrails: SageMaker reads the auto-rollback alarms with the execution role
# (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html).
GUARDRAILS = {"cloudwatch:DescribeAlarms": "arn:aws:cloudwatch:${REGION}:${ACCOUNT_ID}:alarm:ep-x"}
# What the execution role passes itself to, and the context AWS evaluates its conditions in.
SAGEMAKER_CONTEXT = {
    "iam:PassedToService": "sagemaker.amazonaws.com",
    "cloudwatch:namespace": "/aws/sagemaker/TrainingJobs",
}


def _listed(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def _matches(conditions: dict, context: dict) -> bool:
    """StringEquals / StringLike blocks (all this repository's policies use) against ``context``."""
    for operator, block in conditions.items():
        if operator not in ("StringEquals", "StringLike"):
            raise ValueError(f"condition operator {operator} is not evaluated here")
        for key, wanted in block.items():
            if key not in context:
                return False
            match = fnmatch.fnmatchcase if operator == "StringLike" else str.__eq__
            if not any(match(context[key], w) for w in _listed(wanted)):
                return False
    return True


def allows(policy: dict, action: str, resource: str, context: dict | None = None) -> bool:
    """Whether an Allow statement grants ``action`` on ``resource`` (an ARN in the policy's own
    placeholders, or ``*``) in ``context``; actions match case-insensitively, ARNs exactly."""
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        if not any(
            fnmatch.fnmatchcase(action.lower(), p.lower()) for p in _listed(statement["Action"])
        ):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement["Resource"])):
            continue
        if _matches(statement.get("Condition", {}), context or {}):
            return True
    return False


def denied(required: dict[str, str], policy: dict, context: dict | None = None) -> set[str]:
    """``action on resource`` for each of ``required`` (action -> resource) ``policy`` denies."""
    return {
        f"{action} on {resource}"
        for action, resource in required.items()
        if not allows(policy, action, resource, context)
    }


# ---------------------------------------------------------------- calls with their resources
class Need(NamedTuple):
    """One authorization AWS makes for a call: ``action`` on ``resource`` in ``context``."""

    action: str
    resource: str
    context: dict


def _s3(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" + ("" if key is None else f"/{key}")


def _s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


_S3_ON_BUCKET = {
    "ListObjectsV2",
    "ListObjects",
    "HeadBucket",
    "GetBucketLocation",
    "CreateBucket",
    "ListMultipartUploads",
}


def _s3_needs(operation: str, params: dict) -> list[Need]:
    bucket = params.get("Bucket", "")
    if operation == "ListBuckets":
        return [Need("s3:ListAllMyBuckets", "*", {})]
    if operation in _S3_ON_BUCKET:
        context = {"s3:prefix": params["Prefix"]} if "Prefix" in params else {}
        return [Need(a, _s3(bucket), context) for a in iam_actions("s3", operation)]
    if operation == "CopyObject":
        source = params["CopySource"]
        if isinstance(source, str):
            src_bucket, _, src_key = source.lstrip("/").partition("/")
        else:
            src_bucket, src_key = source["Bucket"], source["Key"]
        return [
            Need("s3:GetObject", _s3(src_bucket, src_key), {}),
            Need("s3:PutObject", _s3(bucket, params["Key"]), {}),
        ]
    if operation == "DeleteObjects":
        return [
            Need("s3:DeleteObject", _s3(bucket, o["Key"]), {}) for o in params["Delete"]["Objects"]
        ]
    return [Need(a, _s3(bucket, params["Key"]), {}) for a in iam_actions("s3", operation)]


# SageMaker: the resource type an operation acts on and the parameter naming it (the service
# authorization reference's "Resource types" column; SageMaker lowercases names in its ARNs).
_SAGEMAKER_RESOURCE = {
    "ProcessingJob": ("processing-job", "ProcessingJobName"),
    "TrainingJob": ("training-job", "TrainingJobName"),
    "TransformJob": ("transform-job", "TransformJobName"),
    "HyperParameterTuningJob": ("hyper-parameter-tuning-job", "HyperParameterTuningJobName"),
    "TrainingJobsForHyperParameterTuningJob": (
        "hyper-parameter-tuning-job",
        "HyperParameterTuningJobName",
    ),
    "AutoMLJob": ("automl-job", "AutoMLJobName"),
    "CandidatesForAutoMLJob": ("automl-job", "AutoMLJobName"),
    "FeatureGroup": ("feature-group", "FeatureGroupName"),
    "Record": ("feature-group", "FeatureGroupName"),
    "ModelPackageGroup": ("model-package-group", "ModelPackageGroupName"),
    # A group's versions are listed on the group (what a group's resource policy grants).
    "ModelPackages": ("model-package-group", "ModelPackageGroupName"),
    "Model": ("model", "ModelName"),
    "EndpointConfig": ("endpoint-config", "EndpointConfigName"),
    "Endpoint": ("endpoint", "EndpointName"),
    "EndpointWeightsAndCapacities": ("endpoint", "EndpointName"),
}
_VERB = re.compile(r"^(Create|Describe|Stop|Delete|Update|List|Put|Get|Invoke|BatchGet)(.+)$")
# What a request passes iam:PassRole on: the role field of each Create request.
_ROLE_FIELDS = ("RoleArn", "ExecutionRoleArn")


def _sagemaker_needs(operation: str, params: dict, account: str, region: str) -> list[Need]:
    base = f"arn:aws:sagemaker:{region}:{account}"
    action = f"sagemaker:{operation}"
    if operation in ("AddTags", "ListTags", "DeleteTags"):
        return [Need(action, params["ResourceArn"], {})]
    if operation in ("DescribeModelPackage", "UpdateModelPackage"):
        name = params.get("ModelPackageName") or params["ModelPackageArn"]
        arn = name if name.startswith("arn:") else f"{base}:model-package/{name.lower()}"
        return [Need(action, arn, {})]
    if operation == "CreateModelPackage":
        # A versioned package: SageMaker numbers it in its group when it creates it.
        group = params["ModelPackageGroupName"].split("/")[-1].lower()
        return [Need(action, f"{base}:model-package/{group}/*", {})]
    verb = _VERB.match(operation)
    kind = verb and _SAGEMAKER_RESOURCE.get(verb.group(2))
    if not kind or kind[1] not in params:  # a listing: no resource ARN (Resource *)
        needs = [Need(action, "*", {})]
    else:
        resource, field = kind
        name = params[field].split("/")[-1].lower()
        needs = [Need(action, f"{base}:{resource}/{name}", {})]
        if operation in ("CreateEndpoint", "UpdateEndpoint"):
            config = params["EndpointConfigName"].lower()
            needs.append(Need(action, f"{base}:endpoint-config/{config}", {}))
    if operation in _PASSES_ROLE:
        request = params.get("TrainingJobDefinition", params)
        for field in _ROLE_FIELDS:
            if field in request:
                needs.append(Need("iam:PassRole", request[field], PASSED_TO_SAGEMAKER))
    return needs


PASSED_TO_SAGEMAKER = {"iam:PassedToService": "sagemaker.amazonaws.com"}
_GLUE_TABLE_OPERATIONS = {
    "GetTable",
    "CreatePartition",
    "GetPartition",
    "GetPartitions",
    "BatchGetPartition",
    "BatchCreatePartition",
    "UpdateTable",
    "DeleteTable",
}
# The tables a query reads: FROM/JOIN names, plain or database-qualified, quoted or not.
_QUERY_TABLE = re.compile(r'\b(?:FROM|JOIN)\s+("?[\w-]+"?(?:\s*\.\s*"?[\w-]+"?)?)', re.IGNORECASE)


def query_tables(query: str, database: str | None) -> list[tuple[str, str]]:
    """(database, table) of each table ``query`` reads, unqualified names in ``database``."""
    tables = []
    for name in _QUERY_TABLE.findall(query):
        parts = [p.strip().strip('"') for p in name.split(".")]
        table_db, table = (parts[0], parts[1]) if len(parts) == 2 else (database, parts[0])
        if table_db is not None and (table_db, table) not in tables:
            tables.append((table_db, table))
    return tables


def _glue(region: str, account: str, database: str, table: str | None = None) -> list[str]:
    """A Glue call is authorized on the catalog, the database and the table alike."""
    base = f"arn:aws:glue:{region}:{account}"
    arns = [f"{base}:catalog", f"{base}:database/{database}"]
    return arns + ([f"{base}:table/{database}/{table}"] if table is not None else [])


def _glue_needs(operation: str, params: dict, account: str, region: str) -> list[Need]:
    action = f"glue:{operation}"
    if operation == "GetDatabases":
        return [Need(action, f"arn:aws:glue:{region}:{account}:catalog", {})]
    if operation == "CreateDatabase":
        arns = _glue(region, account, params["DatabaseInput"]["Name"])
    elif operation == "GetDatabase":
        arns = _glue(region, account, params["Name"])
    elif operation == "CreateTable":
        arns = _glue(region, account, params["DatabaseName"], params["TableInput"]["Name"])
    elif operation == "GetTables":
        arns = _glue(region, account, params["DatabaseName"], "*")  # every table it lists
    elif operation in _GLUE_TABLE_OPERATIONS:
        table = params.get("TableName") or params["Name"]
        arns = _glue(region, account, params["DatabaseName"], table)
    else:
        raise KeyError(f"glue:{operation}: no resource mapping")
    return [Need(action, arn, {}) for arn in arns]


def _athena_needs(operation: str, params: dict, account: str, region: str) -> list[Need]:
    # A query's later calls name only its id: the pipeline's queries run in the default
    # workgroup, which StartQueryExecution names (or leaves out) like them.
    workgroup = params.get("WorkGroup", "primary")
    needs = [
        Need(f"athena:{operation}", f"arn:aws:athena:{region}:{account}:workgroup/{workgroup}", {})
    ]
    if operation != "StartQueryExecution":
        return needs
    # Athena reads the catalog and writes the result with the caller's permissions.
    bucket, key = _s3_uri(params["ResultConfiguration"]["OutputLocation"])
    needs += [
        Need("s3:GetBucketLocation", _s3(bucket), {}),
        Need("s3:ListBucket", _s3(bucket), {}),
        Need("s3:PutObject", _s3(bucket, f"{key}*" if key.endswith("/") else key), {}),
    ]
    database = (params.get("QueryExecutionContext") or {}).get("Database")
    for table_db, table in query_tables(params["QueryString"], database):
        for action in ("glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"):
            needs += [Need(action, arn, {}) for arn in _glue(region, account, table_db, table)]
    return needs


AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
AUTOSCALING_CONTEXT = {"iam:AWSServiceName": AUTOSCALING_SERVICE}


def _autoscaling_needs(operation: str, account: str) -> list[Need]:
    """Scalable targets have ARNs AWS assigns, so each call is authorized on ``*``; the first
    SageMaker target registered also creates the service's service-linked role."""
    needs = [Need(f"application-autoscaling:{operation}", "*", {})]
    if operation == "RegisterScalableTarget":
        role = (
            f"arn:aws:iam::{account}:role/aws-service-role/{AUTOSCALING_SERVICE}/"
            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
        )
        needs.append(Need("iam:CreateServiceLinkedRole", role, AUTOSCALING_CONTEXT))
    return needs


def _sqs_arn(url: str, account: str, region: str) -> str:
    parts = url.rstrip("/").split("/")
    owner = parts[-2] if len(parts) >= 2 and parts[-2].isdigit() else account
    return f"arn:aws:sqs:{region}:{owner}:{parts[-1]}"


def resource_arns(
    service: str, operation: str, params: dict, account: str, region: str
) -> list[Need]:
    """Every (action, resource ARN, condition context) AWS authorizes for one API call (botocore
    service name, operation, request parameters); KeyError for a call no rule maps, so a new
    kind of call fails the check until it is mapped."""
    if (service, operation) in _NEEDS_NO_PERMISSION:
        return []
    if service == "s3":
        return _s3_needs(operation, params)
    if service in ("sagemaker", "sagemaker-runtime", "sagemaker-featurestore-runtime"):
        return _sagemaker_needs(operation, params, account, region)
    if service == "glue":
        return _glue_needs(operation, params, account, region)
    if service == "athena":
        return _athena_needs(operation, params, account, region)
    if service == "cloudwatch":
        action = f"cloudwatch:{operation}"
        names = params.get("AlarmNames") or ([params["AlarmName"]] if "AlarmName" in params else [])
        if operation in ("GetMetricStatistics", "GetMetricData", "PutMetricData"):
            context = {"cloudwatch:namespace": params["Namespace"]} if "Namespace" in params else {}
            return [Need(action, "*", context)]
        if not names:  # DescribeAlarms by prefix or state: every alarm it may list
            return [Need(action, f"arn:aws:cloudwatch:{region}:{account}:alarm:*", {})]
        return [Need(action, f"arn:aws:cloudwatch:{region}:{account}:alarm:{n}", {}) for n in names]
    if service == "sns":
        return [Need(f"sns:{operation}", params["TopicArn"], {})]
    if service == "sqs":
        return [Need(f"sqs:{operation}", _sqs_arn(params["QueueUrl"], account, region), {})]
    if service == "service-quotas":
        return [Need(f"servicequotas:{operation}", "*", {})]
    if service == "logs":
        arn = f"arn:aws:logs:{region}:{account}:log-group:{params['logGroupName']}"
        if "logStreamName" in params:
            arn += f":log-stream:{params['logStreamName']}"
        return [Need(f"logs:{operation}", arn, {})]
    if service == "application-autoscaling":
        return _autoscaling_needs(operation, account)
    if service == "iam" and operation == "PassRole":
        return [Need("iam:PassRole", params["RoleArn"], PASSED_TO_SAGEMAKER)]
    raise KeyError(f"{service}:{operation}: no resource mapping")


def filled(path: Path, values: dict[str, str]) -> dict:
    """The policy at ``path`` with its placeholders replaced by ``values`` (every one must be
    given: a policy deployed with a placeholder left in it grants nothing)."""
    from string import Template

    load(path)  # the placeholders are known ones, the JSON is well formed
    return json.loads(Template(path.read_text()).substitute(values))


def denials(needs, policy: dict, path: Path) -> list[str]:
    """``action on resource (file)`` for each need (:class:`Need`) ``policy`` does not allow."""
    seen, out = set(), []
    for need in needs:
        key = (need.action, need.resource, tuple(sorted(need.context.items())))
        if key in seen:
            continue
        seen.add(key)
        if not allows(policy, need.action, need.resource, need.context):
            out.append(f"{need.action} on {need.resource} ({path.name})")
    return out
