"""Data capture and shadow logs: what an endpoint saw and answered, written to the lake.

Capture follows SageMaker's layout and record format:
``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<server-id>.jsonl``, one
``{"captureData": {"endpointInput": ..., "endpointOutput": ...}, "eventMetadata": ...}`` per line,
sampled with the config's ``InitialSamplingPercentage``. JSON content types (the config's
``CaptureContentTypeHeader.JsonContentTypes``, else application/json and application/jsonlines)
are stored as text, others base64. Shadow answers are logged next to the production answer under
``<lake>/_sagemaker/shadow-logs/<endpoint>/<shadow variant>/yyyy/mm/dd/hh/<server-id>.jsonl``.
Each record is appended as one whole line with a single write (O_APPEND).
"""

from __future__ import annotations

import base64
import json
import os
import random
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from include.pipeline.targets.local.endpoint.models import STATE_DIR
from include.pipeline.targets.local.lake import resolve

DEFAULT_JSON_TYPES = ("application/json", "application/jsonlines")


def _encoded(data: bytes, content_type: str, config: dict) -> dict:
    header = config.get("CaptureContentTypeHeader") or {}
    media = (content_type or "").split(";")[0].strip()
    if media in (header.get("JsonContentTypes") or DEFAULT_JSON_TYPES):
        encoding = "JSON"
    elif media in (header.get("CsvContentTypes") or ()):
        encoding = "CSV"
    else:
        encoding = "BASE64"
    if encoding != "BASE64":
        try:
            return {
                "observedContentType": content_type,
                "data": data.decode(),
                "encoding": encoding,
            }
        except UnicodeDecodeError:
            pass
    return {
        "observedContentType": content_type,
        "data": base64.b64encode(data).decode(),
        "encoding": "BASE64",
    }


class CaptureWriter:
    def __init__(self, lake: Path, seed: int | None = None):
        self.lake = Path(lake)
        self.server_id = uuid.uuid4().hex[:12]
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def _append(self, folder: Path, record: dict) -> Path:
        now = datetime.now(UTC)
        path = folder / now.strftime("%Y/%m/%d/%H") / f"{self.server_id}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return path

    def capture(
        self,
        config: dict | None,
        endpoint: str,
        variant: str,
        request: tuple[bytes, str],
        response: tuple[bytes, str],
        inference_id: str | None = None,
    ) -> Path | None:
        """Write one capture record if the config enables capture and the sample hits."""
        if not config or not config.get("EnableCapture", True):
            return None
        with self._lock:
            sampled = self._rng.random() * 100 < float(config.get("InitialSamplingPercentage", 0))
        if not sampled:
            return None
        modes = {o.get("CaptureMode") for o in config.get("CaptureOptions") or []}
        data: dict = {}
        if "Input" in modes or not modes:
            data["endpointInput"] = {"mode": "INPUT", **_encoded(*request, config)}
        if "Output" in modes or not modes:
            data["endpointOutput"] = {"mode": "OUTPUT", **_encoded(*response, config)}
        meta = {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if inference_id:
            meta["inferenceId"] = inference_id
        record = {"captureData": data, "eventMetadata": meta, "eventVersion": "0"}
        folder = resolve(config["DestinationS3Uri"], self.lake) / endpoint / variant
        return self._append(folder, record)

    def log_shadow(
        self,
        endpoint: str,
        production_variant: str,
        shadow_variant: str,
        request: tuple[bytes, str],
        production_output: bytes,
        shadow_output: bytes | None,
        shadow_error: str | None,
    ) -> Path:
        """Log a shadow variant's answer beside the production answer it shadowed."""
        record = {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "productionVariant": production_variant,
            "shadowVariant": shadow_variant,
            "contentType": request[1],
            "input": request[0].decode(errors="replace"),
            "productionOutput": production_output.decode(errors="replace"),
            "shadowOutput": None
            if shadow_output is None
            else shadow_output.decode(errors="replace"),
            "shadowError": shadow_error,
        }
        folder = self.lake / STATE_DIR / "shadow-logs" / endpoint / shadow_variant
        return self._append(folder, record)
