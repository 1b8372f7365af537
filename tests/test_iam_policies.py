"""The IAM policy files: well formed, least privilege, and the action mapping the aws end-to-end
test uses to check its recorded calls against them (``test_pipeline_aws.py``)."""

from __future__ import annotations

import json

import pytest

from tests import iam_policies as iam


@pytest.mark.parametrize("path", sorted(iam.IAM.glob("*.json")), ids=lambda p: p.name)
def test_policy_files_parse_with_known_placeholders_only(path):
    document = iam.load(path)
    assert document, path


@pytest.mark.parametrize(
    "path",
    [iam.AIRFLOW_ROLE, iam.EXECUTION_ROLE, iam.EXECUTION_ROLE_VPC_KMS],
    ids=lambda p: p.name,
)
def test_no_wildcard_services_and_scoped_resources(path):
    policy = iam.load(path)
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert action != "*" and not action.endswith(":*"), (path.name, statement["Sid"])
        if statement["Resource"] == "*":  # only where AWS allows no resource ARN
            assert "Comment" in statement, (path.name, statement["Sid"])


def test_the_airflow_role_passes_only_the_execution_role_to_sagemaker():
    (passing,) = [
        s for s in iam.load(iam.AIRFLOW_ROLE)["Statement"] if s["Action"] == "iam:PassRole"
    ]
    assert passing["Resource"].endswith(":role/${EXECUTION_ROLE_NAME}")
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


def test_api_calls_map_to_the_actions_iam_checks():
    assert iam.iam_actions("s3", "ListObjectsV2") == {"s3:ListBucket"}
    assert iam.iam_actions("s3", "HeadObject") == {"s3:GetObject"}
    assert iam.iam_actions("sagemaker-runtime", "InvokeEndpoint") == {"sagemaker:InvokeEndpoint"}
    assert "iam:PassRole" in iam.iam_actions("sagemaker", "CreateTrainingJob")
    assert "glue:GetPartitions" in iam.iam_actions("athena", "StartQueryExecution")
    assert iam.iam_actions("sts", "GetCallerIdentity") == set()


def test_missing_names_what_a_policy_does_not_grant():
    policy = {"Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "glue:GetTable"]}]}
    assert iam.missing({"s3:GetObject", "glue:gettable", "glue:CreateTable"}, policy) == {
        "glue:CreateTable"
    }


def test_the_execution_role_grants_the_autopilot_minimum_and_reads_rollback_alarms():
    role = iam.load(iam.EXECUTION_ROLE)
    required = iam.AUTOPILOT_MINIMUM | iam.GUARDRAILS
    assert not iam.denied(required, role, iam.SAGEMAKER_CONTEXT), iam.EXECUTION_ROLE


def test_the_execution_role_passes_only_itself_and_only_to_sagemaker():
    role = iam.load(iam.EXECUTION_ROLE)
    itself = "arn:aws:iam::${ACCOUNT_ID}:role/${EXECUTION_ROLE_NAME}"
    assert iam.allows(role, "iam:PassRole", itself, iam.SAGEMAKER_CONTEXT)
    other = "arn:aws:iam::${ACCOUNT_ID}:role/admin"
    assert not iam.allows(role, "iam:PassRole", other, iam.SAGEMAKER_CONTEXT)
    glue = {"iam:PassedToService": "glue.amazonaws.com"}
    assert not iam.allows(role, "iam:PassRole", itself, glue)


def test_allows_evaluates_actions_resources_and_conditions():
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:Get*"],
                "Resource": "arn:aws:s3:::${BUCKET}/runs/*",
                "Condition": {"StringLike": {"s3:prefix": ["runs/*"]}},
            }
        ]
    }
    assert iam.allows(
        policy, "s3:getobject", "arn:aws:s3:::${BUCKET}/runs/a", {"s3:prefix": "runs/a"}
    )
    assert not iam.allows(
        policy, "s3:GetObject", "arn:aws:s3:::${BUCKET}/other", {"s3:prefix": "runs/a"}
    )
    assert not iam.allows(policy, "s3:GetObject", "arn:aws:s3:::${BUCKET}/runs/a")
    assert not iam.allows(
        policy, "s3:PutObject", "arn:aws:s3:::${BUCKET}/runs/a", {"s3:prefix": "runs/a"}
    )


@pytest.mark.parametrize("prefix", ["", "team-a"])
def test_the_s3_notification_watches_the_prefix_the_pipeline_reads(prefix):
    """Filled as docs/aws.md says (PREFIX: PIPELINE_PREFIX with its trailing slash, or empty),
    the notification's key prefix is the incoming folder's key, not ``team-aincoming/``."""
    import json
    from string import Template

    from include.pipeline import settings as pipeline_settings
    from include.pipeline.layout import Layout

    settings = pipeline_settings.Settings(bucket="reviews-bucket", prefix=prefix)
    incoming = Layout(settings).key(Layout(settings).incoming())
    text = (iam.IAM / "s3-notification.json").read_text()
    filled = Template(text).safe_substitute(PREFIX=f"{prefix}/" if prefix else "")
    (config,) = json.loads(filled)["QueueConfigurations"]
    (rule,) = config["Filter"]["Key"]["FilterRules"]
    assert rule == {"Name": "prefix", "Value": incoming}


def test_the_airflow_role_may_publish_notifications_to_its_topic_only():
    role = iam.load(iam.AIRFLOW_ROLE)
    topic = "arn:aws:sns:${REGION}:${ACCOUNT_ID}:${NOTIFY_TOPIC_NAME}"
    assert iam.allows(role, "sns:Publish", topic)
    assert not iam.allows(role, "sns:Publish", "arn:aws:sns:${REGION}:${ACCOUNT_ID}:other")


ACCOUNT, REGION = "123456789012", "us-east-1"
SM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
GLUE = f"arn:aws:glue:{REGION}:{ACCOUNT}"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecutionRole"
VALUES = {
    "ACCOUNT_ID": ACCOUNT,
    "REGION": REGION,
    "BUCKET": "lake",
    "PREFIX": "",
    "INPUT_BUCKET": "incoming",
    "GLUE_DATABASE": "dsoaws",
    "EXECUTION_ROLE_NAME": "SageMakerExecutionRole",
    "ARRIVAL_QUEUE_NAME": "arrivals",
    "APPROVAL_QUEUE_NAME": "approvals",
    "NOTIFY_TOPIC_NAME": "pipeline",
}


def needs(service, operation, **params):
    return {
        (n.action, n.resource, tuple(sorted(n.context.items())))
        for n in iam.resource_arns(service, operation, params, ACCOUNT, REGION)
    }


def test_s3_calls_name_the_bucket_or_the_object():
    assert needs("s3", "ListObjectsV2", Bucket="lake", Prefix="runs/") == {
        ("s3:ListBucket", "arn:aws:s3:::lake", (("s3:prefix", "runs/"),))
    }
    assert needs("s3", "HeadObject", Bucket="lake", Key="a/b.csv") == {
        ("s3:GetObject", "arn:aws:s3:::lake/a/b.csv", ())
    }
    assert needs("s3", "CopyObject", Bucket="lake", Key="raw/x", CopySource="incoming/d/x") == {
        ("s3:GetObject", "arn:aws:s3:::incoming/d/x", ()),
        ("s3:PutObject", "arn:aws:s3:::lake/raw/x", ()),
    }
    deleted = needs("s3", "DeleteObjects", Bucket="lake", Delete={"Objects": [{"Key": "k"}]})
    assert deleted == {("s3:DeleteObject", "arn:aws:s3:::lake/k", ())}


def test_sagemaker_calls_name_their_resource_and_pass_the_role():
    assert needs("sagemaker", "CreateTrainingJob", TrainingJobName="Train-1", RoleArn=ROLE) == {
        ("sagemaker:CreateTrainingJob", f"{SM}:training-job/train-1", ()),
        ("iam:PassRole", ROLE, (("iam:PassedToService", "sagemaker.amazonaws.com"),)),
    }
    tuning = needs(
        "sagemaker",
        "CreateHyperParameterTuningJob",
        HyperParameterTuningJobName="hpo",
        TrainingJobDefinition={"RoleArn": ROLE},
    )
    created = (
        "sagemaker:CreateHyperParameterTuningJob",
        f"{SM}:hyper-parameter-tuning-job/hpo",
        (),
    )
    assert created in tuning
    assert ("iam:PassRole", ROLE, (("iam:PassedToService", "sagemaker.amazonaws.com"),)) in tuning
    assert needs("sagemaker", "CreateEndpoint", EndpointName="ep", EndpointConfigName="c") == {
        ("sagemaker:CreateEndpoint", f"{SM}:endpoint/ep", ()),
        ("sagemaker:CreateEndpoint", f"{SM}:endpoint-config/c", ()),
    }
    assert needs("sagemaker-runtime", "InvokeEndpoint", EndpointName="ep") == {
        ("sagemaker:InvokeEndpoint", f"{SM}:endpoint/ep", ())
    }
    assert needs("sagemaker", "DescribeAutoMLJob", AutoMLJobName="A") == {
        ("sagemaker:DescribeAutoMLJob", f"{SM}:automl-job/a", ())
    }
    assert needs("sagemaker-featurestore-runtime", "PutRecord", FeatureGroupName="g") == {
        ("sagemaker:PutRecord", f"{SM}:feature-group/g", ())
    }
    assert needs("sagemaker", "ListModelPackages", ModelPackageGroupName="reviews") == {
        ("sagemaker:ListModelPackages", f"{SM}:model-package-group/reviews", ())
    }
    assert needs("sagemaker", "CreateModelPackage", ModelPackageGroupName="reviews") == {
        ("sagemaker:CreateModelPackage", f"{SM}:model-package/reviews/*", ())
    }
    package = f"{SM}:model-package/reviews/3"
    assert needs("sagemaker", "UpdateModelPackage", ModelPackageArn=package) == {
        ("sagemaker:UpdateModelPackage", package, ())
    }
    assert needs("sagemaker", "AddTags", ResourceArn=f"{SM}:model/m") == {
        ("sagemaker:AddTags", f"{SM}:model/m", ())
    }
    assert needs("sagemaker", "ListTrainingJobs") == {("sagemaker:ListTrainingJobs", "*", ())}


def test_glue_calls_need_the_catalog_the_database_and_the_table():
    catalog, database = f"{GLUE}:catalog", f"{GLUE}:database/dsoaws"
    assert needs("glue", "GetTable", DatabaseName="dsoaws", Name="reviews") == {
        ("glue:GetTable", catalog, ()),
        ("glue:GetTable", database, ()),
        ("glue:GetTable", f"{GLUE}:table/dsoaws/reviews", ()),
    }
    created = needs("glue", "CreateDatabase", DatabaseInput={"Name": "dsoaws"})
    assert created == {("glue:CreateDatabase", catalog, ()), ("glue:CreateDatabase", database, ())}
    partition = needs("glue", "CreatePartition", DatabaseName="dsoaws", TableName="reviews")
    assert ("glue:CreatePartition", f"{GLUE}:table/dsoaws/reviews", ()) in partition
    assert len(partition) == 3


def test_athena_queries_need_the_workgroup_the_result_location_and_the_tables_read():
    started = needs(
        "athena",
        "StartQueryExecution",
        QueryString='SELECT * FROM "sagemaker_featurestore"."reviews_1" JOIN labels ON 1=1',
        QueryExecutionContext={"Database": "dsoaws"},
        ResultConfiguration={"OutputLocation": "s3://lake/runs/r/q.csv"},
    )
    workgroup = f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/primary"
    assert ("athena:StartQueryExecution", workgroup, ()) in started
    assert ("s3:PutObject", "arn:aws:s3:::lake/runs/r/q.csv", ()) in started
    assert ("glue:GetTable", f"{GLUE}:table/sagemaker_featurestore/reviews_1", ()) in started
    assert ("glue:GetTable", f"{GLUE}:table/dsoaws/labels", ()) in started
    assert needs("athena", "GetQueryResults", QueryExecutionId="q") == {
        ("athena:GetQueryResults", f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/primary", ())
    }


def test_cloudwatch_sns_sqs_quotas_logs_and_sts_calls():
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:ep-errors"
    assert needs("cloudwatch", "PutMetricAlarm", AlarmName="ep-errors") == {
        ("cloudwatch:PutMetricAlarm", alarm, ())
    }
    assert needs("cloudwatch", "DescribeAlarms", AlarmNames=["ep-errors"]) == {
        ("cloudwatch:DescribeAlarms", alarm, ())
    }
    assert needs("cloudwatch", "GetMetricStatistics", Namespace="AWS/SageMaker") == {
        ("cloudwatch:GetMetricStatistics", "*", (("cloudwatch:namespace", "AWS/SageMaker"),))
    }
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:pipeline"
    assert needs("sns", "Publish", TopicArn=topic) == {("sns:Publish", topic, ())}
    url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/arrivals"
    assert needs("sqs", "ReceiveMessage", QueueUrl=url) == {
        ("sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:arrivals", ())
    }
    assert needs("service-quotas", "ListServiceQuotas", ServiceCode="sagemaker") == {
        ("servicequotas:ListServiceQuotas", "*", ())
    }
    assert needs("logs", "GetLogEvents", logGroupName="/aws/sagemaker/TrainingJobs") == {
        (
            "logs:GetLogEvents",
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs",
            (),
        )
    }
    assert needs("sts", "GetCallerIdentity") == set()
    with pytest.raises(KeyError, match="ec2:RunInstances"):
        needs("ec2", "RunInstances")


def test_the_filled_airflow_role_allows_the_pipelines_own_resources_only():
    policy = iam.filled(iam.AIRFLOW_ROLE, VALUES)
    assert "${" not in json.dumps(policy)
    ok = [
        *iam.resource_arns("s3", "PutObject", {"Bucket": "lake", "Key": "raw/x"}, ACCOUNT, REGION),
        *iam.resource_arns(
            "glue", "GetTable", {"DatabaseName": "dsoaws", "Name": "reviews"}, ACCOUNT, REGION
        ),
        *iam.resource_arns(
            "sagemaker",
            "CreateProcessingJob",
            {"ProcessingJobName": "prepare-1", "RoleArn": ROLE},
            ACCOUNT,
            REGION,
        ),
        *iam.resource_arns(
            "sagemaker", "ListModelPackages", {"ModelPackageGroupName": "g"}, ACCOUNT, REGION
        ),
    ]
    assert iam.denials(ok, policy, iam.AIRFLOW_ROLE) == []
    other_db = iam.resource_arns(
        "glue", "GetTable", {"DatabaseName": "finance", "Name": "pay"}, ACCOUNT, REGION
    )
    assert iam.denials(other_db, policy, iam.AIRFLOW_ROLE) == [
        f"glue:GetTable on {GLUE}:database/finance (airflow-role.json)",
        f"glue:GetTable on {GLUE}:table/finance/pay (airflow-role.json)",
    ]
    with pytest.raises(KeyError, match="BUCKET"):
        iam.filled(iam.AIRFLOW_ROLE, {k: v for k, v in VALUES.items() if k != "BUCKET"})


def test_a_narrowed_statement_denies_the_call_naming_action_resource_and_file(tmp_path):
    """The checker can fail: the lake's object statement scoped to another prefix refuses the
    pipeline's write, and says which action on which ARN under which file."""
    document = json.loads(iam.AIRFLOW_ROLE.read_text())
    (objects,) = [s for s in document["Statement"] if s["Sid"] == "LakeObjects"]
    objects["Resource"] = "arn:aws:s3:::${BUCKET}/other-team/*"
    narrowed = tmp_path / "narrowed-airflow-role.json"
    narrowed.write_text(json.dumps(document))
    policy = iam.filled(narrowed, VALUES)
    write = iam.resource_arns(
        "s3", "PutObject", {"Bucket": "lake", "Key": "runs/r/summary.json"}, ACCOUNT, REGION
    )
    assert iam.denials(write, policy, narrowed) == [
        "s3:PutObject on arn:aws:s3:::lake/runs/r/summary.json (narrowed-airflow-role.json)"
    ]
    inside = iam.resource_arns(
        "s3", "PutObject", {"Bucket": "lake", "Key": "other-team/x"}, ACCOUNT, REGION
    )
    assert iam.denials(inside, policy, narrowed) == []


def test_the_execution_role_may_not_pass_itself_outside_sagemaker_or_read_other_buckets():
    policy = iam.filled(iam.EXECUTION_ROLE, VALUES)
    own = iam.Need("s3:GetObject", "arn:aws:s3:::lake/runs/r/train.csv", {})
    other = iam.Need("s3:GetObject", "arn:aws:s3:::someone-else/x", {})
    glue = iam.Need("iam:PassRole", ROLE, {"iam:PassedToService": "glue.amazonaws.com"})
    assert iam.denials([own, other, glue], policy, iam.EXECUTION_ROLE) == [
        "s3:GetObject on arn:aws:s3:::someone-else/x (sagemaker-execution-role.json)",
        f"iam:PassRole on {ROLE} (sagemaker-execution-role.json)",
    ]


def test_query_tables_are_the_from_and_join_names_qualified_by_the_query_database():
    query = 'SELECT * FROM reviews r JOIN "sagemaker_featurestore"."g_1" f ON 1=1 JOIN reviews x'
    assert iam.query_tables(query, "dsoaws") == [
        ("dsoaws", "reviews"),
        ("sagemaker_featurestore", "g_1"),
    ]
    assert iam.query_tables("SELECT * FROM (SELECT 1)", "dsoaws") == []


def test_the_optional_vpc_kms_policy_grants_what_sagemaker_needs_in_a_vpc_with_keys():
    """The actions SageMaker's documentation asks of an execution role for VPC jobs and KMS keys."""
    vpc = {
        f"ec2:{a}"
        for a in (
            "CreateNetworkInterface",
            "CreateNetworkInterfacePermission",
            "DeleteNetworkInterface",
            "DeleteNetworkInterfacePermission",
            "DescribeNetworkInterfaces",
            "DescribeVpcs",
            "DescribeDhcpOptions",
            "DescribeSubnets",
            "DescribeSecurityGroups",
        )
    }
    kms = {
        f"kms:{a}" for a in ("CreateGrant", "Decrypt", "GenerateDataKey", "Encrypt", "DescribeKey")
    }
    assert iam.missing(vpc | kms, iam.load(iam.EXECUTION_ROLE_VPC_KMS)) == set()


def test_the_airflow_role_may_autoscale_endpoints_and_create_only_sagemakers_linked_role():
    policy = iam.filled(iam.AIRFLOW_ROLE, VALUES)
    calls = [
        ("RegisterScalableTarget", {"ResourceId": "endpoint/ep/variant/AllTraffic"}),
        ("PutScalingPolicy", {"PolicyName": "p"}),
        ("DescribeScalableTargets", {"ServiceNamespace": "sagemaker"}),
        ("DescribeScalingPolicies", {"ResourceId": "endpoint/ep/variant/AllTraffic"}),
        ("DeregisterScalableTarget", {"ResourceId": "endpoint/ep/variant/AllTraffic"}),
    ]
    needed = [
        need
        for operation, params in calls
        for need in iam.resource_arns("application-autoscaling", operation, params, ACCOUNT, REGION)
    ]
    assert "iam:CreateServiceLinkedRole" in {n.action for n in needed}
    assert iam.denials(needed, policy, iam.AIRFLOW_ROLE) == []
    other = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
    assert not iam.allows(
        policy, "iam:CreateServiceLinkedRole", other, {"iam:AWSServiceName": "ecs.amazonaws.com"}
    )
