"""Look at and review the Model Registry from a shell, on either target.

    python -m include.pipeline.registry_cli [--lake PATH] groups
    python -m include.pipeline.registry_cli list GROUP [--status Approved]
    python -m include.pipeline.registry_cli describe ARN
    python -m include.pipeline.registry_cli approve ARN [--note TEXT]
    python -m include.pipeline.registry_cli reject ARN [--note TEXT]

The requests go to the target's ``sagemaker`` client: SageMaker on ``PIPELINE_TARGET=aws``, the
DuckDB registry in the lake on the default ``local`` target (``--lake`` picks another lake).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from include.pipeline import settings as pipeline_settings
from include.pipeline import targets
from include.pipeline.requests import registry as requests


class Registry:
    """The CLI's registry calls on the target's ``sagemaker`` client (the same request dicts on
    both targets), every page of a listing, responses without ``ResponseMetadata``."""

    def __init__(self, client):
        self.client = client

    def _all(self, operation: str, request: dict, key: str) -> list[dict]:
        items, request = [], dict(request)
        while True:
            page = getattr(self.client, operation)(**request)
            items += page[key]
            if not page.get("NextToken"):
                return items
            request["NextToken"] = page["NextToken"]

    def list_model_package_groups(self, request: dict) -> list[dict]:
        return self._all("list_model_package_groups", request, "ModelPackageGroupSummaryList")

    def list_model_packages(self, request: dict) -> list[dict]:
        return self._all("list_model_packages", request, "ModelPackageSummaryList")

    def describe_model_package(self, request: dict) -> dict:
        response = self.client.describe_model_package(**request)
        response.pop("ResponseMetadata", None)
        return response

    def update_model_package(self, request: dict) -> dict:
        response = self.client.update_model_package(**request)
        response.pop("ResponseMetadata", None)
        return response


def _cell(value) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A plain fixed-width table: ``columns`` are (header, key) pairs."""
    cells = [[h for h, _ in columns]] + [[_cell(r.get(k)) for _, k in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _describe_text(package: dict) -> str:
    containers = package.get("InferenceSpecification", {}).get("Containers", [{}])
    metrics = package.get("ModelMetrics", {})
    rows = [
        ("ARN", package.get("ModelPackageArn")),
        ("Group", package.get("ModelPackageGroupName")),
        ("Version", package.get("ModelPackageVersion")),
        ("Status", package.get("ModelApprovalStatus")),
        ("Note", package.get("ApprovalDescription")),
        ("Created", package.get("CreationTime")),
        ("Modified", package.get("LastModifiedTime")),
        ("Description", package.get("ModelPackageDescription")),
        ("Image", containers[0].get("Image")),
        ("Model data", containers[0].get("ModelDataUrl")),
        ("Evaluation", metrics.get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")),
        ("Bias report", metrics.get("Bias", {}).get("Report", {}).get("S3Uri")),
    ]
    width = max(len(k) for k, _ in rows)
    out = [f"{k.ljust(width)}  {_cell(v)}" for k, v in rows]
    lineage = package.get("CustomerMetadataProperties") or {}
    if lineage:
        out += ["", "Lineage:"] + [f"  {k.ljust(width)}  {v}" for k, v in sorted(lineage.items())]
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m include.pipeline.registry_cli", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--lake", type=Path, help="local lake root (default: PIPELINE_LAKE)")
    parser.add_argument("--json", action="store_true", help="print the raw response as JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("groups", help="list model package groups")
    listing = sub.add_parser("list", help="list the versions of a group")
    listing.add_argument("group")
    listing.add_argument("--status", choices=requests.APPROVAL_STATUSES)
    sub.add_parser("describe", help="show one version").add_argument("arn")
    for name in ("approve", "reject"):
        cmd = sub.add_parser(name, help=f"{name} a version")
        cmd.add_argument("arn")
        cmd.add_argument("--note", default="", help="ApprovalDescription")
    return parser


def main(argv: list[str] | None = None, out=None) -> int:
    from botocore.exceptions import ClientError

    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    cfg = pipeline_settings.load()
    if args.lake:
        cfg = dataclasses.replace(cfg, lake=args.lake.resolve())
    backend = Registry(targets.load(cfg).client("sagemaker"))
    try:
        if args.command == "groups":
            result: Any = backend.list_model_package_groups(
                requests.list_model_package_groups_request()
            )
            text = table(
                result,
                [
                    ("GROUP", "ModelPackageGroupName"),
                    ("CREATED", "CreationTime"),
                    ("DESCRIPTION", "ModelPackageGroupDescription"),
                ],
            )
        elif args.command == "list":
            result = backend.list_model_packages(
                requests.list_model_packages_request(args.group, args.status)
            )
            text = table(
                result,
                [
                    ("VERSION", "ModelPackageVersion"),
                    ("STATUS", "ModelApprovalStatus"),
                    ("CREATED", "CreationTime"),
                    ("ARN", "ModelPackageArn"),
                ],
            )
        elif args.command == "describe":
            result = backend.describe_model_package(
                requests.describe_model_package_request(args.arn)
            )
            text = _describe_text(result)
        else:
            status = "Approved" if args.command == "approve" else "Rejected"
            backend.update_model_package(
                requests.update_model_package_request(args.arn, status, args.note)
            )
            result = backend.describe_model_package(
                requests.describe_model_package_request(args.arn)
            )
            text = f"{args.arn} -> {result['ModelApprovalStatus']}"
    except (ValueError, KeyError, ClientError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str) if args.json else text, file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
