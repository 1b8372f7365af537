"""The local SageMaker Model Registry: package groups and versions in DuckDB.

The file lives at ``<lake>/_sagemaker/registry.duckdb``. Functions mirror the boto3 calls (same
request dicts in, same response shapes out) so the local target runs the very requests the
``aws`` target sends. DuckDB lets one process write at a time, so every call opens a short-lived
connection and retries briefly while another process holds the lock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from include.pipeline.targets.local.names import validate

ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"
APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")
STATE_CHANGE = "SageMaker Model Package State Change"
_LOCK_WAIT_S = 15.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_package_groups (
    name VARCHAR PRIMARY KEY,
    arn VARCHAR NOT NULL,
    description VARCHAR,
    creation_time TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS model_packages (
    arn VARCHAR PRIMARY KEY,
    group_name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    request JSON NOT NULL,
    model_data_url VARCHAR,
    client_token VARCHAR,
    metadata_key VARCHAR NOT NULL,
    approval_status VARCHAR NOT NULL,
    approval_description VARCHAR,
    creation_time TIMESTAMPTZ NOT NULL,
    last_modified_time TIMESTAMPTZ NOT NULL,
    UNIQUE (group_name, version)
);
"""
# Request fields that DescribeModelPackage echoes back unchanged.
_ECHOED = (
    "ModelPackageDescription",
    "InferenceSpecification",
    "SourceAlgorithmSpecification",
    "ValidationSpecification",
    "CertifyForMarketplace",
    "MetadataProperties",
    "ModelMetrics",
    "Domain",
    "Task",
    "SamplePayloadUrl",
    "CustomerMetadataProperties",
    "DriftCheckBaselines",
    "AdditionalInferenceSpecifications",
    "SkipModelValidation",
    "SourceUri",
    "ModelCard",
    "ModelLifeCycle",
)


class RegistryError(ValueError):
    """A request the real registry would refuse (AWS raises ValidationException)."""


class ModelPackageGroupExists(RegistryError):
    """Raised like AWS's ``Model Package Group already exists`` ValidationException."""


def db_path(lake: Path) -> Path:
    return Path(lake) / "_sagemaker" / "registry.duckdb"


def events_folder(lake: Path) -> Path:
    """Where the registry drops its "SageMaker Model Package State Change" events, one JSON file
    each (what EventBridge would deliver; the local approval trigger watches the folder)."""
    return Path(lake) / "_sagemaker" / "events" / "model-package-state"


def state_change_event(described: dict, region: str = DEFAULT_REGION) -> dict:
    """The EventBridge event SageMaker sends when a package version is created or its approval
    changes: ``detail`` is the version as DescribeModelPackage describes it."""
    import uuid

    detail = {k: _iso(v) for k, v in described.items()}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": STATE_CHANGE,
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": _now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [described["ModelPackageArn"]],
        "detail": detail,
    }


def _iso(value):
    return value.isoformat() if isinstance(value, datetime) else value


def record_state_change(lake: Path, arn: str, region: str = DEFAULT_REGION) -> Path:
    """Write the state change event of version ``arn`` (atomic: the watcher never reads half)."""
    from include.pipeline.core.files import atomic_write_bytes

    event = state_change_event(describe_model_package(arn, lake), region)
    detail = event["detail"]
    name = (
        f"{time.time_ns()}-{detail['ModelPackageGroupName']}-{detail['ModelPackageVersion']}"
        f"-{detail['ModelApprovalStatus']}.json"
    )
    path = events_folder(lake) / name
    atomic_write_bytes(path, json.dumps(event, indent=2).encode())
    return path


@contextmanager
def _connect(lake: Path) -> Iterator:
    import duckdb

    path = db_path(lake)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            con = duckdb.connect(str(path))
            break
        except duckdb.IOException as exc:  # another process holds the write lock
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(_SCHEMA)
        yield con
    finally:
        con.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _group_arn(name: str, region: str) -> str:
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:model-package-group/{name.lower()}"


def _package_arn(group: str, version: int, region: str) -> str:
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:model-package/{group.lower()}/{version}"


def package_arn(name: str, region: str = DEFAULT_REGION) -> str:
    """A versioned package's ARN from its ARN or its ``<group>/<version>`` name (CreateModel's
    ``ModelPackageName`` takes either)."""
    if name.startswith("arn:"):
        return name
    group, _, version = name.partition("/")
    if not version.isdigit():
        raise RegistryError(f"model package {name!r} is not a versioned package (<group>/<n>)")
    return _package_arn(group, int(version), region)


def _group_name(value: str) -> str:
    """A group given by name or by ARN (CreateModelPackage accepts both), checked as AWS does."""
    validate("sagemaker", "CreateModelPackage", "ModelPackageGroupName", value)
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


def _check_status(status: str | None, arn: str) -> str:
    if status not in APPROVAL_STATUSES:
        raise RegistryError(
            f"ModelApprovalStatus {status!r} for {arn} is not one of {', '.join(APPROVAL_STATUSES)}"
        )
    return status


# ------------------------------------------------------------------------------------------ groups
def create_model_package_group(
    request: dict, lake: Path, region: str = DEFAULT_REGION
) -> dict[str, str]:
    """CreateModelPackageGroup; an existing group raises :class:`ModelPackageGroupExists`."""
    name = validate(
        "sagemaker",
        "CreateModelPackageGroup",
        "ModelPackageGroupName",
        request["ModelPackageGroupName"],
    )
    arn = _group_arn(name, region)
    with _connect(lake) as con:
        if con.execute("SELECT 1 FROM model_package_groups WHERE name = ?", [name]).fetchone():
            raise ModelPackageGroupExists(f"Model Package Group already exists: {arn}")
        con.execute(
            "INSERT INTO model_package_groups VALUES (?, ?, ?, ?)",
            [name, arn, request.get("ModelPackageGroupDescription", ""), _now()],
        )
    return {"ModelPackageGroupArn": arn}


def list_model_package_groups(lake: Path) -> dict:
    """ListModelPackageGroups, sorted by name."""
    with _connect(lake) as con:
        rows = con.execute(
            "SELECT name, arn, description, creation_time FROM model_package_groups ORDER BY name"
        ).fetchall()
    return {
        "ModelPackageGroupSummaryList": [
            {
                "ModelPackageGroupName": name,
                "ModelPackageGroupArn": arn,
                "ModelPackageGroupDescription": desc or "",
                "CreationTime": created,
                "ModelPackageGroupStatus": "Completed",
            }
            for name, arn, desc, created in rows
        ]
    }


# ---------------------------------------------------------------------------------------- versions
def _model_data_url(request: dict) -> str | None:
    containers = request.get("InferenceSpecification", {}).get("Containers") or [{}]
    return containers[0].get("ModelDataUrl")


def _metadata_key(request: dict) -> str:
    """What makes two registrations 'the same model': its lineage and metrics."""
    same = {k: request.get(k) for k in ("CustomerMetadataProperties", "ModelMetrics")}
    return json.dumps(same, sort_keys=True, default=str)


def create_model_package(request: dict, lake: Path, region: str = DEFAULT_REGION) -> dict:
    """CreateModelPackage for a versioned package: versions 1, 2, 3... per group.

    Idempotent: a request with the ClientToken of an existing version, or (without a token) with
    the same model data URL, lineage and metrics, returns that version instead of a new one. A
    reused ClientToken with a different model is refused, as AWS does.
    """
    if not request.get("ModelPackageGroupName"):
        raise RegistryError("CreateModelPackage needs ModelPackageGroupName (versioned packages)")
    group = _group_name(request["ModelPackageGroupName"])
    status = _check_status(request.get("ModelApprovalStatus", "PendingManualApproval"), group)
    url, token, key = _model_data_url(request), request.get("ClientToken"), _metadata_key(request)
    with _connect(lake) as con:
        if not con.execute("SELECT 1 FROM model_package_groups WHERE name = ?", [group]).fetchone():
            raise RegistryError(f"Model Package Group does not exist: {group}")
        con.execute("BEGIN TRANSACTION")
        if token:
            same = con.execute(
                "SELECT arn, model_data_url, metadata_key FROM model_packages "
                "WHERE group_name = ? AND client_token = ?",
                [group, token],
            ).fetchone()
            if same and (same[1], same[2]) != (url, key):
                con.execute("ROLLBACK")
                raise RegistryError(
                    f"ClientToken {token!r} was used for {same[0]} with a different model "
                    f"({same[1]}); refusing to register {url} under it"
                )
        else:
            same = con.execute(
                "SELECT arn FROM model_packages WHERE group_name = ? AND model_data_url "
                "IS NOT DISTINCT FROM ? AND metadata_key = ? AND client_token IS NULL",
                [group, url, key],
            ).fetchone()
        if same:
            con.execute("ROLLBACK")
            return {"ModelPackageArn": same[0]}
        version = con.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM model_packages WHERE group_name = ?",
            [group],
        ).fetchone()[0]
        arn, now = _package_arn(group, version, region), _now()
        con.execute(
            "INSERT INTO model_packages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                arn,
                group,
                version,
                json.dumps(request, default=str),
                url,
                token,
                key,
                status,
                None,
                now,
                now,
            ],
        )
        con.execute("COMMIT")
    record_state_change(lake, arn, region)
    return {"ModelPackageArn": arn}


_COLUMNS = (
    "arn, group_name, version, request, approval_status, approval_description, "
    "creation_time, last_modified_time"
)


def _describe_row(row: tuple) -> dict:
    arn, group, version, request, status, note, created, modified = row
    request = json.loads(request)
    described = {
        "ModelPackageName": group,
        "ModelPackageGroupName": group,
        "ModelPackageVersion": version,
        "ModelPackageArn": arn,
        "CreationTime": created,
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
        "CertifyForMarketplace": False,
        "ModelApprovalStatus": status,
        "LastModifiedTime": modified,
    }
    described |= {k: request[k] for k in _ECHOED if k in request}
    if note:
        described["ApprovalDescription"] = note
    return described


def describe_model_package(arn: str, lake: Path) -> dict:
    """DescribeModelPackage of one version; an unknown ARN is a clear error."""
    with _connect(lake) as con:
        row = con.execute(f"SELECT {_COLUMNS} FROM model_packages WHERE arn = ?", [arn]).fetchone()
    if row is None:
        raise RegistryError(
            f"Model package {arn} does not exist in the registry at {db_path(lake)}"
        )
    return _describe_row(row)


def list_model_packages(group: str, lake: Path, approval_status: str | None = None) -> dict:
    """ListModelPackages of one group, oldest version first, optionally one status only."""
    if approval_status is not None:
        _check_status(approval_status, group)
    with _connect(lake) as con:
        rows = con.execute(
            f"SELECT {_COLUMNS} FROM model_packages WHERE group_name = ? "
            "AND (? IS NULL OR approval_status = ?) ORDER BY version",
            [_group_name(group), approval_status, approval_status],
        ).fetchall()
    keys = (
        "ModelPackageName",
        "ModelPackageGroupName",
        "ModelPackageVersion",
        "ModelPackageArn",
        "ModelPackageDescription",
        "CreationTime",
        "ModelPackageStatus",
        "ModelApprovalStatus",
    )
    summaries = []
    for row in rows:
        described = _describe_row(row)
        summaries.append({k: described[k] for k in keys if k in described})
    return {"ModelPackageSummaryList": summaries}


def update_model_package(request: dict, lake: Path) -> dict:
    """UpdateModelPackage: approval status and its description; a changed status is announced
    as a state change event, as SageMaker announces it to EventBridge."""
    arn = request["ModelPackageArn"]
    status = _check_status(request.get("ModelApprovalStatus"), arn)
    with _connect(lake) as con:
        before = con.execute(
            "SELECT approval_status FROM model_packages WHERE arn = ?", [arn]
        ).fetchone()
        found = con.execute(
            "UPDATE model_packages SET approval_status = ?, approval_description = ?, "
            "last_modified_time = ? WHERE arn = ? RETURNING arn",
            [status, request.get("ApprovalDescription"), _now(), arn],
        ).fetchone()
    if found is None:
        raise RegistryError(
            f"Model package {arn} does not exist in the registry at {db_path(lake)}"
        )
    if before[0] != status:
        record_state_change(lake, arn, _region_of(arn))
    return {"ModelPackageArn": arn}


def _region_of(arn: str) -> str:
    return arn.split(":")[3] or DEFAULT_REGION


def latest_approved(group: str, lake: Path) -> dict | None:
    """The describe of the newest Approved version of a group, or None."""
    approved = list_model_packages(group, lake, "Approved")["ModelPackageSummaryList"]
    return describe_model_package(approved[-1]["ModelPackageArn"], lake) if approved else None


def register_model_version(
    group_request: dict, package_request: dict, lake: Path, region: str = DEFAULT_REGION
) -> str:
    """What ``SageMakerRegisterModelVersionOperator.execute`` does, locally: create the group if
    missing, then the version; returns the version ARN (the operator's XCom value)."""
    try:
        create_model_package_group(group_request, lake, region)
        group_created = True
    except ModelPackageGroupExists:
        group_created = False
    try:
        return create_model_package(package_request, lake, region)["ModelPackageArn"]
    except RegistryError:
        if group_created:  # the operator rolls back a group it created for a failed version
            with _connect(lake) as con:
                con.execute(
                    "DELETE FROM model_package_groups WHERE name = ?",
                    [group_request["ModelPackageGroupName"]],
                )
        raise
