"""The account's SageMaker quotas against what a run needs (``aws`` target only): read through
the Service Quotas API before the run starts anything."""

from __future__ import annotations

from include.pipeline.requests.quotas import SERVICE_CODE


def account_quotas(client) -> dict[str, float]:
    """``{quota name: value}`` of SageMaker: the defaults, overridden by the account's applied
    values (what an increase request changed)."""
    values: dict[str, float] = {}
    for method in ("list_aws_default_service_quotas", "list_service_quotas"):
        for page in client.get_paginator(method).paginate(ServiceCode=SERVICE_CODE):
            values.update({q["QuotaName"]: float(q["Value"]) for q in page.get("Quotas", [])})
    return values


def quota_problems(client, needs: dict[str, int]) -> list[str]:
    """One line per quota the run would exceed, naming the quota to raise and by how much."""
    values = account_quotas(client)
    problems = []
    for name, count in sorted(needs.items()):
        value = values.get(name)
        if value is None:
            problems.append(
                f"SageMaker has no quota {name!r} in this region (the instance type is not "
                "offered here): choose another type or region"
            )
        elif value < count:
            problems.append(
                f"SageMaker quota {name!r} is {value:g}; this run needs {count} at once: "
                "request an increase in Service Quotas"
            )
    return problems
