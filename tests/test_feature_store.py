"""The local Feature Store, and PutRecord ingestion over real HTTP with bounded retries."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import boto3
import pandas as pd
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from include.jobs.feature_records import put_records
from include.pipeline.requests.features import feature_group_request
from include.pipeline.targets.local.featurestore import store as fs
from tests.test_features_requests import put_record as put_record_request

FG = "reviews-fg"


def records(n: int, event_time: str = "2024-05-01T12:00:00Z", body: str = "review") -> pd.DataFrame:
    splits = ["train"] * 8 + ["validation", "test"]
    return pd.DataFrame(
        {
            "review_id": [f"id-{i:03d}" for i in range(n)],
            "event_time": [event_time] * n,
            "sentiment": [i % 3 - 1 for i in range(n)],
            "label_id": [i % 3 for i in range(n)],
            "input_ids": [json.dumps([101, 7 + i % 5, 102, 0]) for i in range(n)],
            "review_body": [f"{body} {i}" for i in range(n)],
            "split_type": [splits[i % 10] for i in range(n)],
            "product_category": ["Dresses" if i % 2 else "Knits" for i in range(n)],
        }
    )


def write(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    request = feature_group_request(
        feature_group_name=FG,
        role_arn="arn:aws:iam::000000000000:role/R",
        offline_store_uri="s3://bkt/feature-store",
        online_store=True,
    )
    fs.create_feature_group(request, lake)
    return lake


def count(lake: Path) -> int:
    table = fs.describe_feature_group(FG, lake)["OfflineStoreConfig"]["DataCatalogConfig"][
        "TableName"
    ]
    return fs.query(f'SELECT count(*) AS n FROM "sagemaker_featurestore"."{table}"', lake)[0]["n"]


def test_create_is_idempotent_and_describes_like_aws(lake: Path):
    describe = fs.describe_feature_group(FG, lake)
    assert describe["FeatureGroupStatus"] == "Created"
    assert isinstance(describe["CreationTime"], datetime)
    stamp = int(describe["CreationTime"].timestamp())
    offline = describe["OfflineStoreConfig"]
    assert offline["DataCatalogConfig"]["TableName"] == f"reviews_fg_{stamp}"
    assert offline["S3StorageConfig"]["ResolvedOutputS3Uri"] == (
        f"s3://bkt/feature-store/000000000000/sagemaker/us-east-1/offline-store/{FG}-{stamp}/data"
    )
    request = feature_group_request(
        feature_group_name=FG,
        role_arn="arn:aws:iam::000000000000:role/R",
        offline_store_uri="s3://bkt/feature-store",
        online_store=True,
    )
    assert fs.create_feature_group(request, lake) == describe
    request["FeatureDefinitions"] = request["FeatureDefinitions"][:-1]
    with pytest.raises(ValueError, match="different definition"):
        fs.create_feature_group(request, lake)


def test_ingest_query_back_splits_and_reingest_is_a_noop(lake: Path, tmp_path: Path):
    source = write(records(40), tmp_path / "features" / "part-algo-1-features.parquet")
    first = fs.ingest_records(FG, source.parent, lake)
    assert first["RecordCount"] == 40 and first["OfflineRecordsWritten"] == 40
    files = list((lake / "bkt/feature-store").rglob("*.parquet"))
    assert len(files) == 1
    assert "/year=2024/month=05/day=01/hour=12/" in str(files[0])
    sizes = {s: len(fs.training_set(FG, s, lake)) for s in ("train", "validation", "test")}
    assert sizes == {"train": 32, "validation": 4, "test": 4}
    test_rows = fs.training_set(FG, "test", lake)
    assert [r["review_id"] for r in test_rows] == ["id-009", "id-019", "id-029", "id-039"]
    assert test_rows[0]["sentiment"] == -1 and test_rows[0]["label_id"] == 0

    again = fs.ingest_records(FG, source, lake)
    assert again["OfflineRecordsWritten"] == 0
    assert count(lake) == 40


def test_newer_event_time_wins_online_and_in_the_training_set(lake: Path, tmp_path: Path):
    fs.ingest_records(FG, write(records(10), tmp_path / "a.parquet"), lake)
    newer = records(10, event_time="2024-06-01T08:30:00Z", body="edited")
    fs.ingest_records(FG, write(newer, tmp_path / "b.parquet"), lake)
    older = records(10, event_time="2023-01-01T00:00:00Z", body="ancient")
    fs.ingest_records(FG, write(older, tmp_path / "c.parquet"), lake)
    assert count(lake) == 30  # offline keeps history
    train = fs.training_set(FG, "train", lake)
    assert len(train) == 8 and {r["review_body"].split()[0] for r in train} == {"edited"}
    record = fs.get_record(FG, "id-003", lake)["Record"]
    values = {f["FeatureName"]: f["ValueAsString"] for f in record}
    assert values["review_body"] == "edited 3"
    assert values["event_time"] == "2024-06-01T08:30:00Z"
    assert values["sentiment"] == "-1"
    assert fs.get_record(FG, "no-such-id", lake) == {}


def test_put_record_then_get_record(lake: Path):
    row = records(1).iloc[0].to_dict()
    fs.put_record(put_record_request(FG, {**row, "review_id": "single"}), lake)
    values = {
        f["FeatureName"]: f["ValueAsString"] for f in fs.get_record(FG, "single", lake)["Record"]
    }
    assert values["input_ids"] == row["input_ids"]
    assert count(lake) == 1
    bad = put_record_request(FG, {**row, "review_id": "bad"})
    for item in bad["Record"]:
        if item["FeatureName"] == "label_id":
            item["ValueAsString"] = "two"
    with pytest.raises(ValueError, match="'label_id' must be Integral, got 'two'"):
        fs.put_record(bad, lake)


def test_wrong_type_fails_before_any_record_is_written(lake: Path, tmp_path: Path):
    df = records(5)
    df["sentiment"] = df["sentiment"].astype(str)
    with pytest.raises(ValueError, match=r"'sentiment' must be Integral, got '-1'"):
        fs.ingest_records(FG, write(df, tmp_path / "bad.parquet"), lake)
    df = records(5)
    df.loc[3, "event_time"] = "yesterday"
    with pytest.raises(ValueError, match="'yesterday'.*row 3"):
        fs.ingest_records(FG, write(df, tmp_path / "bad2.parquet"), lake)
    assert count(lake) == 0
    assert fs.get_record(FG, "id-000", lake) == {}


def test_export_training_set_is_a_training_channel(lake: Path, tmp_path: Path):
    from include.jobs.data import load_split

    fs.ingest_records(FG, write(records(20), tmp_path / "a.parquet"), lake)
    path = fs.export_training_set(FG, "validation", "s3://bkt/run/channels/validation", lake)
    split = load_split(path.parent)
    assert len(split) == 2 and split.seq_length == 4
    assert split.attention_mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 0]]


def test_online_store_off_refuses_get_record(tmp_path: Path):
    lake = tmp_path / "lake2"
    request = feature_group_request(
        feature_group_name="offline-only",
        role_arn="arn:aws:iam::000000000000:role/R",
        offline_store_uri="s3://bkt/fs",
        online_store=False,
    )
    fs.create_feature_group(request, lake)
    with pytest.raises(ValueError, match="no online store"):
        fs.get_record("offline-only", "x", lake)


# ----- PutRecord over HTTP: boto3 -> a 127.0.0.1 server backed by the local feature store


class _Service:
    def __init__(self, lake: Path, throttle: int):
        self.lake, self.throttle, self.calls = lake, throttle, 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                group = unquote(self.path.rsplit("/", 1)[-1])
                service.calls += 1
                if service.throttle > 0:
                    service.throttle -= 1
                    return self._reply(400, {"message": "slow down"}, "ThrottlingException")
                try:
                    fs.put_record({"FeatureGroupName": group, **body}, service.lake)
                except ValueError as exc:
                    return self._reply(400, {"message": str(exc)}, "ValidationError")
                return self._reply(200, {})

            def _reply(self, status, payload, error=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def service(lake: Path, monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    svc = _Service(lake, throttle=0)
    yield svc
    svc.server.shutdown()
    svc.server.server_close()


def _client(url: str):
    return boto3.client(
        "sagemaker-featurestore-runtime",
        endpoint_url=url,
        config=Config(retries={"total_max_attempts": 1}),
    )


class _Clients:
    """A picklable client factory that notes the process ids it ran in (this process's copy)."""

    def __init__(self, url: str):
        self.url, self.pids = url, []

    def __call__(self):
        self.pids.append(os.getpid())
        return _client(self.url)


def test_put_records_retries_throttling_then_writes(service: _Service, lake: Path):
    service.throttle = 2
    delays: list[float] = []
    rows = records(3).to_dict("records")
    written = put_records(
        partial(_client, service.url), FG, rows, max_workers=1, max_attempts=4, sleep=delays.append
    )
    assert written == 3
    assert service.calls == 5 and len(delays) == 2 and delays[1] > delays[0] > 0
    assert fs.get_record(FG, "id-002", lake)["Record"]


def test_put_records_concurrent_workers_write_every_record_and_log_progress(
    service: _Service, lake: Path
):
    service.throttle = 3  # throttled calls land on whichever workers come first
    lines: list[str] = []
    rows = records(25).to_dict("records")
    written = put_records(
        partial(_client, service.url),
        FG,
        rows,
        max_workers=4,
        sleep=lambda _: None,
        log=lines.append,
        progress_every=10,
    )
    assert written == 25 and service.calls == 28
    assert [line.split(" records")[0] for line in lines] == [
        "PutRecord 10/25",
        "PutRecord 20/25",
        "PutRecord 25/25",
    ]
    online = [fs.get_record(FG, f"id-{i:03d}", lake)["Record"] for i in range(25)]
    assert all(online)


def test_runtime_put_record_is_readable_at_once_and_offline_after_the_job(
    service: _Service, lake: Path
):
    from include.jobs.feature_records import to_record
    from include.pipeline.targets.local.featurestore import runtime

    rows = records(30).to_dict("records")
    with runtime.serve(lake) as url:
        assert (
            put_records(partial(_client, url), FG, rows, max_workers=3, sleep=lambda _: None) == 30
        )
        assert fs.get_record(FG, "id-029", lake)["Record"]  # online: written at once
        assert count(lake) == 0  # offline: buffered, as on AWS it lands minutes later
        bad = to_record(rows[0])
        bad[3] = {"FeatureName": "label_id", "ValueAsString": "2.5"}
        with pytest.raises(ClientError, match="'label_id' must be Integral"):
            _client(url).put_record(FeatureGroupName=FG, Record=bad)
    assert count(lake) == 30  # flushed when the job's runtime closes


def test_put_records_processes_write_every_record_once_and_share_the_progress(
    service: _Service, lake: Path, capfd
):
    from include.jobs.feature_records import MIN_RECORDS_PER_PROCESS
    from include.pipeline.targets.local.featurestore import runtime

    rows = records(2 * MIN_RECORDS_PER_PROCESS).to_dict("records")
    with runtime.serve(lake) as url:
        make_client = _Clients(url)
        written = put_records(
            make_client, FG, rows, max_workers=2, max_processes=2, progress_every=100, log=print
        )
        assert written == len(rows) and make_client.pids == []  # made in the parts' processes
        assert all(fs.get_record(FG, f"id-{i:03d}", lake)["Record"] for i in range(len(rows)))
    assert count(lake) == len(rows)  # each record once
    progress = [line.split(" records")[0] for line in capfd.readouterr().out.splitlines()]
    assert progress == [f"PutRecord {n}/400" for n in (100, 200, 300, 400)]


def test_put_records_runs_few_records_in_this_process(service: _Service, lake: Path):
    make_client = _Clients(service.url)
    assert put_records(make_client, FG, records(12).to_dict("records"), max_processes=4) == 12
    assert make_client.pids == [os.getpid()]


def test_put_records_a_failing_process_stops_the_others_and_raises(service: _Service):
    from include.jobs.feature_records import MIN_RECORDS_PER_PROCESS

    service.throttle = 10**6
    with pytest.raises(ClientError, match="ThrottlingException"):
        put_records(
            partial(_client, service.url),
            FG,
            records(2 * MIN_RECORDS_PER_PROCESS).to_dict("records"),
            max_workers=1,
            max_processes=2,
            max_attempts=3,
            base_delay=0.0,
            sleep=time.sleep,
        )
    assert service.calls <= 2 * 3  # each part gave up on its first record


def test_put_records_gives_up_after_max_attempts(service: _Service):
    service.throttle = 100
    with pytest.raises(ClientError, match="ThrottlingException"):
        put_records(
            partial(_client, service.url),
            FG,
            records(2).to_dict("records"),
            max_workers=1,
            max_attempts=3,
            sleep=lambda _: None,
        )
    assert service.calls == 3


def test_put_records_validates_every_row_before_sending(service: _Service):
    rows = records(3).to_dict("records")
    rows[2]["label_id"] = "two"
    with pytest.raises(ValueError, match="'label_id' must be Integral, got 'two' \\(row 2\\)"):
        put_records(partial(_client, service.url), FG, rows, sleep=lambda _: None)
    assert service.calls == 0


def test_prepare_job_ingests_with_put_record(
    service: _Service, lake: Path, tmp_path: Path, monkeypatch
):
    from include.jobs import prepare
    from tests.test_prepare import COUNTS, argv, make_tokenizer, write_reviews

    write_reviews(tmp_path / "in" / "r.csv", COUNTS)
    tok = make_tokenizer(tmp_path / "tok")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME", service.url)
    args = prepare.parse_args(
        [*argv(tmp_path / "in", tmp_path / "out", tok), "--feature-store-ingest", "true"]
    )
    summary = prepare.prepare(args, log=lambda _: None)
    assert summary["records_ingested"] == 225 == service.calls
    assert count(lake) == 225
    assert len(fs.training_set(FG, "train", lake)) == summary["splits"]["train"]
    assert sum(summary["splits"].values()) == 225
