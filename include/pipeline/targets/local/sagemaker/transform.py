"""Local batch transform: executes a CreateTransformJob request like SageMaker would.

Every object under the input prefix is split into records (lines, or the whole object), packed
into requests of at most ``MaxPayloadInMB`` (``MultiRecord``) or sent one by one
(``SingleRecord``) to the model's handler, and the answers are assembled into
``<S3OutputPath>/<input key relative to the prefix>.out``. Outputs are written atomically, so a
re-run replaces them and a failed run leaves no ``.out`` that looks finished for that file.
StopTransformJob (:func:`include.pipeline.targets.local.sagemaker.jobs.stop_job` on the job's
name) ends it Stopped before its next request to the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.targets.local.lake import list_files, resolve
from include.pipeline.targets.local.names import validate
from include.pipeline.targets.local.sagemaker import jobs

_MB = 1024 * 1024


class TransformError(Exception):
    """A record or an answer the job cannot handle; the message names file and line."""


class _Stopped(Exception):
    """StopTransformJob reached the job."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _records(data: bytes, split_type: str) -> list[tuple[int, bytes]]:
    """``(line number, record)`` pairs; blank lines are not records (as in SageMaker)."""
    if split_type == "None":
        return [(1, data)] if data.strip() else []
    if split_type != "Line":
        raise TransformError(f"SplitType {split_type!r} is not supported locally (None, Line)")
    return [(i, line) for i, line in enumerate(data.splitlines(), start=1) if line.strip()]


def payload_batches(
    records: list[tuple[int, bytes]], *, strategy: str, max_bytes: int | None, source: str
) -> Iterator[list[tuple[int, bytes]]]:
    batch: list[tuple[int, bytes]] = []
    size = 0
    for number, record in records:
        if max_bytes is not None and len(record) > max_bytes:
            raise TransformError(
                f"{source} line {number}: record of {len(record)} bytes exceeds MaxPayloadInMB "
                f"({max_bytes // _MB} MB)"
            )
        added = len(record) + (1 if batch else 0)
        if batch and (
            strategy == "SingleRecord" or (max_bytes is not None and size + added > max_bytes)
        ):
            yield batch
            batch, size, added = [], 0, len(record)
        batch.append((number, record))
        size += added
    if batch:
        yield batch


def _load_handler(model_name: str, lake: Path):
    from include.pipeline.targets.local.endpoint.models import load_handler

    return load_handler(model_name, lake)


def run_transform_job(
    request: dict,
    *,
    lake: Path,
    log: Callable[[str], None] = print,
    handler=None,
) -> dict:
    """Run the transform job of ``request``; return a DescribeTransformJob-shaped result.

    ``handler`` (an object with ``predict(body, content_type, accept) -> (bytes, content_type)``)
    defaults to ``include.pipeline.targets.local.endpoint.models.load_handler(ModelName, lake)``.
    A failure is reported as ``TransformJobStatus: Failed`` with a ``FailureReason`` naming the
    file and lines, like SageMaker's describe call, not raised.
    """
    lake = Path(lake)
    name = validate(
        "sagemaker", "CreateTransformJob", "TransformJobName", request["TransformJobName"]
    )
    validate("sagemaker", "CreateTransformJob", "ModelName", request["ModelName"])
    tin, tout = request["TransformInput"], request["TransformOutput"]
    strategy = request.get("BatchStrategy", "MultiRecord")
    max_mb = int(request.get("MaxPayloadInMB", 6))
    result = {
        "TransformJobName": name,
        "TransformJobArn": f"arn:aws:sagemaker:local:000000000000:transform-job/{name.lower()}",
        "ModelName": request["ModelName"],
        "MaxConcurrentTransforms": request.get("MaxConcurrentTransforms", 1),
        "MaxPayloadInMB": max_mb,
        "BatchStrategy": strategy,
        "TransformInput": tin,
        "TransformOutput": tout,
        "TransformResources": request.get("TransformResources", {}),
        "CreationTime": _now(),
        "TransformStartTime": _now(),
    }
    counts = {"files": 0, "records": 0, "requests": 0}
    stop = jobs.StopSignal()
    try:
        with jobs.running(name, stop):
            _transform(request, lake, log, handler, stop, counts)
    except _Stopped:
        log(f"transform {name} stopped")
        result.update(TransformJobStatus="Stopped", FailureReason=jobs.STOPPED_REASON)
    except (TransformError, OSError, ValueError) as exc:
        log(f"transform {name} failed: {exc}")
        result.update(TransformJobStatus="Failed", FailureReason=str(exc))
    else:
        result["TransformJobStatus"] = "Completed"
    result["TransformEndTime"] = _now()
    result["LocalStats"] = counts
    return result


def _transform(
    request: dict,
    lake: Path,
    log: Callable[[str], None],
    handler,
    stop: jobs.StopSignal,
    counts: dict[str, int],
) -> None:
    """Send every input object's records to the model, writing each object's ``.out``; stops
    before the next request once ``stop`` is set."""
    name = request["TransformJobName"]
    tin, tout = request["TransformInput"], request["TransformOutput"]
    source = tin["DataSource"]["S3DataSource"]
    content_type = tin.get("ContentType", "application/jsonlines")
    accept = tout.get("Accept", content_type)
    split_type = tin.get("SplitType", "None")
    strategy = request.get("BatchStrategy", "MultiRecord")
    max_mb = int(request.get("MaxPayloadInMB", 6))
    max_bytes = max_mb * _MB if max_mb > 0 else None  # 0 means no limit (streaming)
    assemble_lines = tout.get("AssembleWith", "None") == "Line"
    if source.get("S3DataType", "S3Prefix") != "S3Prefix":
        raise TransformError(f"S3DataType {source['S3DataType']!r}: only S3Prefix locally")
    prefix = source["S3Uri"]
    files = list_files(prefix, lake)
    if not files:
        raise TransformError(f"no input objects under {prefix}")
    root = resolve(prefix, lake)
    out_root = tout["S3OutputPath"].rstrip("/")
    handler = handler or _load_handler(request["ModelName"], lake)
    for path in files:
        relative = path.name if root.is_file() else path.relative_to(root).as_posix()
        where = f"{prefix.rstrip('/')}/{relative}" if not root.is_file() else prefix
        records = _records(path.read_bytes(), split_type)
        answers: list[bytes] = []
        for batch in payload_batches(records, strategy=strategy, max_bytes=max_bytes, source=where):
            if stop.is_set():
                raise _Stopped
            first, last = batch[0][0], batch[-1][0]
            body = b"\n".join(r for _, r in batch)
            try:
                answer, _ = handler.predict(body, content_type, accept)
            except Exception as exc:  # the model's own error, reported with its location
                raise TransformError(
                    f"{where} lines {first}-{last}: model error: {type(exc).__name__}: {exc}"
                ) from exc
            answers.append(answer.rstrip(b"\n") if assemble_lines else answer)
            counts["requests"] += 1
        sep = b"\n" if assemble_lines else b""
        data = sep.join(answers) + (sep if answers else b"")
        atomic_write_bytes(resolve(f"{out_root}/{relative}.out", lake), data)
        counts["files"] += 1
        counts["records"] += len(records)
        log(f"transform {name}: {where} -> {out_root}/{relative}.out ({len(records)} records)")
