"""Who may open the reports: the API server's logged-in user, as its auth manager decides.

Airflow mounts a plugin's FastAPI app without authenticating its requests, so the reports app
checks each one as the core REST API does: Airflow's own ``get_user`` (a Bearer JWT, else the
UI's ``_token`` cookie), then the auth manager's ``is_authorized_dag`` for reading the main
DAG's runs, which is what the pages show. No second login and no second user list. It fails
closed: outside an API server (no auth manager) every request is refused.

Airflow is imported inside the check: the plugin module is imported by every Airflow component.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status

DAG_ID = "reviews_pipeline"  # the DAG whose runs the pages show (dags/reviews_pipeline.py)


async def require_reader(request: Request) -> None:
    """FastAPI dependency: 401 without a valid login, 403 when the user may not read the runs."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    try:
        auth_manager = get_auth_manager()
    except RuntimeError as exc:  # served outside Airflow's API server: nobody to vouch for users
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"no auth manager: {exc}") from exc
    user = await get_user(request, None, await bearer_scheme(request))
    allowed = auth_manager.is_authorized_dag(
        method="GET",
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=DAG_ID),
        user=user,
    )
    if not allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"may not read {DAG_ID} runs")
