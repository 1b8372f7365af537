"""The reports app's /artifact route against hostile URIs: checked as resolved, never 500.

A real lake with real symlinks; the route answers 400 for what it will not serve (whatever the
URI's text looks like), 404 for what is allowed but absent, 200 only for a servable file.
"""

from __future__ import annotations

import os

import pytest

from tests.test_reports_plugin import BUCKET, RUN_KEY, client, lake, plugin  # noqa: F401

SECRET = b"model weights: not for the browser"


@pytest.fixture
def hostile_lake(lake):  # noqa: F811
    run = lake / BUCKET / "runs" / RUN_KEY
    (run / "model.bin").write_bytes(SECRET)
    (run / "model.tar.gz").write_bytes(SECRET)
    state = lake / "_sagemaker" / "endpoints"
    state.mkdir(parents=True, exist_ok=True)
    (state / "leak.json").write_bytes(b'{"secret": "engine state"}')
    (lake / BUCKET / "_engine").mkdir()
    (lake / BUCKET / "_engine" / "state.json").write_bytes(b'{"secret": "bucket state"}')
    other = lake / "other-bucket"
    other.mkdir()
    (other / "secret.json").write_bytes(b'{"secret": "another bucket"}')
    (run / "ok.json").write_bytes(b'{"ok": true}')
    links = {
        "to_engine_state.json": state / "leak.json",
        "to_bucket_state.json": lake / BUCKET / "_engine" / "state.json",
        "to_other_bucket.json": other / "secret.json",
        "renamed_model.png": run / "model.tar.gz",
        "linked_dir": other,
        "to_ok.json": run / "ok.json",
        "outside_lake.txt": "/etc/passwd",
    }
    for name, target in links.items():
        os.symlink(target, run / name)
    return lake


def artifact(client, key: str):  # noqa: F811
    return client.get("/artifact", params={"uri": f"s3://{BUCKET}/runs/{RUN_KEY}/{key}"})


@pytest.mark.parametrize(
    "key",
    [
        "model.bin?.json",  # a URL query: no part of a key, and not a .json file
        "model.bin#.txt",  # a URL fragment
        "model.bin%3F.json",
        "to_engine_state.json",  # links out of the bucket into the engine state
        "to_bucket_state.json",  # ... to the bucket's own engine state
        "to_other_bucket.json",  # ... into another bucket
        "linked_dir/secret.json",  # a linked folder
        "renamed_model.png",  # a servable name for an unservable file
        "outside_lake.txt",
        "x" * 300 + ".json",  # longer than a file name may be
        "/".join(["abcdefgh"] * 120) + ".json",  # longer than an S3 key may be
        "a\x7fb.json",
    ],
)
def test_what_the_route_will_not_serve_is_400_whatever_the_text(client, hostile_lake, key):  # noqa: F811
    response = artifact(client, key)
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert b'"secret":' not in response.content and SECRET not in response.content
    assert b"root:" not in response.content


def test_a_link_that_stays_in_the_bucket_is_followed(client, hostile_lake):  # noqa: F811
    response = artifact(client, "to_ok.json")
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_long_but_valid_keys_are_404_not_500(client, hostile_lake):  # noqa: F811
    key = "/".join(["abcdefgh"] * 100) + ".json"  # 900 bytes, short segments
    response = artifact(client, key)
    assert response.status_code == 404, response.text[:300]
    response = artifact(client, "y" * 250 + ".json")
    assert response.status_code == 404, response.text[:300]


def test_the_route_needs_a_login(plugin, hostile_lake, airflow_db):  # noqa: F811
    from fastapi.testclient import TestClient

    from tests.airflow_auth import reader_token

    reader_token()  # the auth manager exists (as in the API server); this client has no token
    anonymous = TestClient(plugin.app)
    assert (
        anonymous.get(
            "/artifact", params={"uri": f"s3://{BUCKET}/runs/{RUN_KEY}/ok.json"}
        ).status_code
        == 401
    )
    assert anonymous.get("/").status_code == 401
    forged = TestClient(plugin.app, cookies={"_token": "eyJhbGciOiJIUzUxMiJ9.e30.x"})
    assert forged.get("/").status_code == 403
