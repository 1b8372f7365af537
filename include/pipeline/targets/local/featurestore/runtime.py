"""The local ``sagemaker-featurestore-runtime``: PutRecord / GetRecord over real HTTP.

A processing job that ingests with boto3 (``prepare.py --feature-store-ingest true``) runs
unchanged locally: the local processing operator serves this API on 127.0.0.1 for the job's
lifetime and points boto3 at it (``AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME``). As on AWS,
the online store is written at once and the offline store a little later: records are buffered
and written to the offline store in batches (and when the job ends), not one file per record.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import defaultdict
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from include.pipeline.targets.local.featurestore import store as feature_store

FLUSH_EVERY = 5000  # buffered offline rows per feature group before a write
ENDPOINT_ENV = "AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME"


class _Runtime:
    def __init__(self, lake: Path):
        self.lake = lake
        self.lock = threading.Lock()
        self.buffer: dict[str, list[dict]] = defaultdict(list)
        self.describes: dict[str, dict] = {}
        # One online-store connection for the job's lifetime (opening SQLite per record and
        # validating through pandas was ~20 ms a record: 100 s of a 6,000-review prepare job).
        self.online_lock = threading.Lock()
        self.online: sqlite3.Connection | None = None

    def describe(self, name: str) -> dict:
        if name not in self.describes:
            self.describes[name] = feature_store.describe_feature_group(name, self.lake)
        return self.describes[name]

    def put(self, name: str, body: dict) -> None:
        describe = self.describe(name)
        row = feature_store.record_row(describe, body.get("Record", []))
        stores = body.get("TargetStores") or ["OfflineStore", "OnlineStore"]
        if "OnlineStore" in stores:
            with self.online_lock:
                if self.online is None:
                    self.online = feature_store.online_connection(self.lake)
                feature_store.put_online(describe, [row], self.lake, self.online)
        if "OfflineStore" in stores:
            with self.lock:
                self.buffer[name].append(row)
                full = len(self.buffer[name]) >= FLUSH_EVERY
            if full:
                self.flush(name)

    def close(self) -> None:
        self.flush()
        with self.online_lock:
            if self.online is not None:
                self.online.close()
                self.online = None

    def flush(self, name: str | None = None) -> None:
        with self.lock:
            names = [name] if name else list(self.buffer)
            batches = {n: self.buffer.pop(n, []) for n in names}
        for n, rows in batches.items():
            if rows:
                feature_store.ingest_rows(n, rows, self.lake, stores=("OfflineStore",))


def _handler(runtime: _Runtime):
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, and headers and body leave at once: with Nagle's algorithm on, each small
        # reply waited for the client's delayed ACK (~40 ms a PutRecord).
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _name(self) -> str | None:
            parts = urlparse(self.path).path.strip("/").split("/")
            return unquote(parts[1]) if len(parts) == 2 and parts[0] == "FeatureGroup" else None

        def _reply(self, status: int, payload: dict, error: str | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if error:
                self.send_header("x-amzn-ErrorType", error)
            self.end_headers()
            self.wfile.write(data)

        def _fail(self, exc: Exception) -> None:
            missing = isinstance(exc, FileNotFoundError | KeyError)
            kind = "ResourceNotFound" if missing else "ValidationError"
            self._reply(404 if missing else 400, {"message": str(exc)}, kind)

        def do_PUT(self):  # noqa: N802 - http.server's naming
            name = self._name()
            if name is None:
                return self._reply(404, {"message": f"no route {self.path}"}, "UnknownOperation")
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                runtime.put(name, body)
            except Exception as exc:  # noqa: BLE001 - every failure is an API error answer
                return self._fail(exc)
            self._reply(200, {})

        def do_GET(self):  # noqa: N802
            name = self._name()
            query = parse_qs(urlparse(self.path).query)
            record_id = (query.get("RecordIdentifierValueAsString") or [None])[0]
            if name is None or record_id is None:
                return self._reply(404, {"message": f"no route {self.path}"}, "UnknownOperation")
            try:
                self._reply(200, feature_store.get_record(name, record_id, runtime.lake))
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)

        def log_message(self, *args):  # keep the task log for the job's own output
            pass

    return Handler


@contextmanager
def serve(lake: Path):
    """Serve the runtime API for the block; yields the endpoint URL; flushes on exit."""
    runtime = _Runtime(lake)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(runtime))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        runtime.close()
