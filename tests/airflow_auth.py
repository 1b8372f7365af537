"""Logins for tests of the reports app: real JWTs from Airflow's own auth manager.

The reports app authenticates through the API server's auth manager
(include/pipeline/ui_auth.py). In-process tests sign a token with that same auth manager, as
``POST /auth/token`` does; the API server test (tests/test_reports_auth.py) logs in over HTTP.
Validating a token reads the metadata database (revoked tokens): use the ``airflow_db`` fixture.
"""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

COOKIE = COOKIE_NAME_JWT_TOKEN


def reader_token(username: str = "reviewer", role: str = "viewer") -> str:
    """A token for a Simple auth manager user (the default auth manager), signed in-process."""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return create_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))
