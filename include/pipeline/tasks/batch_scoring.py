"""The batch scoring DAG's Airflow-side glue: input preparation, the approved model, the
CreateModel + CreateTransformJob requests, and the summary of the scores.

Everything below works on both targets: the Model Registry is the target's ``sagemaker``
client (:func:`registry_client`), and :func:`resolve_model` makes the same boto3 calls on either.
"""

from __future__ import annotations

import csv
import io
import json

from include.pipeline import schema, storage
from include.pipeline.documents.jsonl import json_lines
from include.pipeline.layout import RunLayout
from include.pipeline.requests import deployment, transform
from include.pipeline.requests import registry as registry_requests
from include.pipeline.requests.common import job_name
from include.pipeline.settings import Settings

CONTENT_TYPE = "application/jsonlines"
LABELS = schema.SENTIMENTS
# CSV text columns tried in order when the form leaves text_column empty.
TEXT_COLUMNS = (schema.REVIEW_BODY, schema.RAW_TEXT)
_LISTED_SKIPS = 20
INPUT_REQUIRED = "input_uri is required: an s3:// prefix or file of JSON lines, or a CSV"


# ------------------------------------------------------------------------------------- input
def _decode(data: bytes, uri: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{uri}: not UTF-8 at byte {exc.start}: {exc.reason}") from None


def csv_to_jsonlines(data: bytes, uri: str, text_column: str = "") -> tuple[bytes, dict]:
    """One ``{"features": [text]}`` line per CSV row with text; ``(lines, stats)``.

    Rows whose text is empty are skipped (there is nothing to score) and listed by row number
    (1 = the first row after the header), so output line *i* can be traced back to its row.
    """
    reader = csv.DictReader(io.StringIO(_decode(data, uri), newline=""))
    columns = reader.fieldnames or []
    candidates = (text_column,) if text_column else TEXT_COLUMNS
    column = next((c for c in candidates if c in columns), None)
    if column is None:
        raise ValueError(
            f"{uri}: no text column {' or '.join(repr(c) for c in candidates)}; "
            f"the header has {columns}"
        )
    lines: list[str] = []
    skipped: list[int] = []
    for number, row in enumerate(reader, start=1):
        if None in row:  # more cells than header columns
            raise ValueError(
                f"{uri} row {number}: {len(columns) + len(row[None])} cells, header "
                f"has {len(columns)}"
            )
        text = (row.get(column) or "").strip()
        if text:
            lines.append(json.dumps({"features": [text]}, ensure_ascii=False))
        else:
            skipped.append(number)
    if not lines:
        raise ValueError(f"{uri}: no row has text in column {column!r}")
    stats = {
        "records": len(lines),
        "text_column": column,
        "skipped_rows": len(skipped),
        "skipped_row_numbers": skipped[:_LISTED_SKIPS],
    }
    return ("\n".join(lines) + "\n").encode(), stats


def check_jsonlines(data: bytes, uri: str) -> int:
    """The number of records; a clear error naming the line that is not one review."""
    records = 0
    lines = _decode(data, uri).splitlines()
    for number, obj in json_lines(lines, source=uri):
        line = lines[number - 1]
        features = obj.get("features") if isinstance(obj, dict) else None
        if not (isinstance(features, list) and len(features) == 1 and isinstance(features[0], str)):
            raise ValueError(
                f'{uri} line {number}: expected {{"features": ["review text"]}} (one text per '
                f"line, so output line i answers input line i), got {line[:200]!r}"
            )
        records += 1
    if not records:
        raise ValueError(f"{uri}: no JSON lines to score")
    return records


def configuration_problems(settings: Settings, params: dict) -> list[str]:
    """What the first task refuses before anything is read: a value past the form's limits (a
    REST client may skip them), then a missing input or one from a place the deployment does
    not allow (:func:`prepare_input` checks the input again)."""
    from include.pipeline.params import BATCH_SCORING, limit_problems
    from include.pipeline.run_inputs import RefusedInput, resolve_input

    found = limit_problems(params, BATCH_SCORING)
    if any(p.split(":", 1)[0] == "input_uri" for p in found):
        return found
    uri = (params.get("input_uri") or "").strip()
    if not uri:
        return [*found, INPUT_REQUIRED]
    try:
        resolve_input(settings, uri)
    except RefusedInput as exc:
        found.append(str(exc))
    return found


def prepare_input(settings: Settings, params: dict, *, run_id: str) -> dict:
    """The transform job's input prefix.

    - an ``s3://`` URI that is not a CSV: scored where it is (the transform job reads it);
    - a CSV (``s3://`` or local path): converted to JSON lines in the run's folder;
    - a local JSON-lines file: checked and copied to the run's folder (the job reads S3 only).
    """
    from include.pipeline.run_inputs import resolve_input

    uri = (params.get("input_uri") or "").strip()
    if not uri:
        raise ValueError(INPUT_REQUIRED)
    where = resolve_input(settings, uri)  # only from places the deployment allows
    is_csv = uri.lower().endswith(".csv")
    if uri.startswith("s3://") and not is_csv:
        return {"source_uri": uri, "input_uri": uri, "records": None}
    store = storage.for_settings(settings)
    data = storage.read_input(store, where)
    if is_csv:
        lines, stats = csv_to_jsonlines(data, uri, (params.get("text_column") or "").strip())
    else:
        lines, stats = data, {"records": check_jsonlines(data, uri)}
    target = RunLayout(settings, run_id).batch_input()
    store.write(target, lines)
    return {"source_uri": uri, "input_uri": target, **stats}


# ------------------------------------------------------------------------------------- model
def registry_client(settings: Settings):
    """The Model Registry: the target's boto3 (or boto3-shaped) ``sagemaker`` client."""
    from include.pipeline import targets

    return targets.load(settings).client("sagemaker")


def latest_approved_request(group: str) -> dict:
    """ListModelPackages for the newest Approved version only (one page, one item)."""
    request = registry_requests.list_model_packages_request(group, "Approved")
    return {**request, "SortOrder": "Descending", "MaxResults": 1}


def resolve_model(client, *, group: str, model_package_arn: str = "") -> dict:
    """The model package version to score with: ``model_package_arn``, or the group's newest
    Approved version. Only Approved versions are used; returns its container and ARN."""
    arn = (model_package_arn or "").strip()
    if not arn:
        listed = client.list_model_packages(**latest_approved_request(group))
        summaries = listed["ModelPackageSummaryList"]
        if not summaries:
            raise ValueError(
                f"model package group {group!r} has no Approved version; approve one "
                "(python -m include.pipeline.registry_cli approve ARN) or set model_package_arn"
            )
        arn = summaries[0]["ModelPackageArn"]
    described = client.describe_model_package(
        **registry_requests.describe_model_package_request(arn)
    )
    status = described.get("ModelApprovalStatus")
    if status != "Approved":
        raise ValueError(f"model package {arn} is {status}, not Approved; it cannot be used")
    containers = described.get("InferenceSpecification", {}).get("Containers") or []
    if not containers or not containers[0].get("ModelDataUrl"):
        raise ValueError(f"model package {arn}: no container with a ModelDataUrl")
    container = containers[0]
    return {
        "model_package_arn": arn,
        "version": described.get("ModelPackageVersion"),
        "image_uri": container["Image"],
        "model_data_url": container["ModelDataUrl"],
        "environment": container.get("Environment") or {},
        "containers": containers,  # an inference pipeline is served whole
    }


# ------------------------------------------------------------------------------------ requests
def build_requests(
    settings: Settings, params: dict, *, run_id: str, model: dict, input_uri: str
) -> dict:
    """CreateModel (the package's container, or all of an inference pipeline's) and
    CreateTransformJob over ``input_uri``.

    Names are per run (a cleared task targets the same model and job); the outputs go to
    ``runs/<run key>/batch-scoring/output/<input file>.out``.
    """
    from include.pipeline import candidates
    from include.pipeline.tasks.registry import MODEL_NAME

    model_name = job_name(f"{MODEL_NAME}-batch", run_id)
    create_model = deployment.model_request(
        model_name=model_name,
        image_uri=model["image_uri"],
        model_data_url=model["model_data_url"],
        role_arn=settings.role_arn,
        region=settings.region,
        environment=model.get("environment"),
        containers=model["containers"] if len(model.get("containers") or []) > 1 else None,
        settings=settings,
        network_job=f"{candidates.of_image(model['image_uri']).name}-model",
    )
    create_job = transform.transform_job_request(
        job_name=job_name(f"{MODEL_NAME}-batch-scoring", run_id),
        model_name=model_name,
        input_uri=input_uri,
        output_uri=RunLayout(settings, run_id).batch_output(),
        instance_type=params["instance_type"],
        content_type=CONTENT_TYPE,
        split_type="Line",
        batch_strategy="MultiRecord",
        tags={"model-package-arn": model["model_package_arn"][:256]},  # lineage of the scores
        settings=settings,
    )
    return {"model": create_model, "transform": create_job}


# ------------------------------------------------------------------------------------- summary
def count_predictions(data: bytes, uri: str) -> dict:
    """Per-label counts and mean probability of one ``.out`` file; an error names a bad line."""
    counts = dict.fromkeys(LABELS, 0)
    probability = 0.0
    for number, line in enumerate(_decode(data, uri).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            answer = json.loads(line)
            label = answer["predicted_label"]
            probability += float(answer["probability"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{uri} line {number}: not a prediction ({exc}): {line[:200]!r}"
            ) from None
        if label not in counts:
            raise ValueError(f"{uri} line {number}: predicted_label {label!r} not in {LABELS}")
        counts[label] += 1
    return {"counts": counts, "probability_sum": probability}


def summarize(
    settings: Settings, *, run_id: str, prepared: dict, model: dict, scored: dict
) -> dict:
    """Counts per label over every ``.out`` file of the job; written to ``summary.json``.

    When the number of input records is known (CSV or local input), a different number of
    predictions fails the task: lines were lost or split.
    """
    job = scored["Transform"]
    output = job["TransformOutput"]["S3OutputPath"].rstrip("/") + "/"
    store = storage.for_settings(settings)
    files = []
    totals = dict.fromkeys(LABELS, 0)
    probability = 0.0
    for uri in (u for u in store.list(output) if u.endswith(".out")):
        counted = count_predictions(store.read(uri), uri)
        files.append({"uri": uri, "predictions": sum(counted["counts"].values())})
        probability += counted["probability_sum"]
        for label, n in counted["counts"].items():
            totals[label] += n
    total = sum(totals.values())
    if not files:
        raise ValueError(f"transform job {job['TransformJobName']}: no .out files under {output}")
    expected = prepared.get("records")
    if expected is not None and expected != total:
        raise ValueError(
            f"transform job {job['TransformJobName']}: {total} predictions under {output} for "
            f"{expected} input records"
        )
    summary = {
        "run_id": run_id,
        "model_package_arn": model["model_package_arn"],
        "model_data_url": model["model_data_url"],
        "transform_job_name": job["TransformJobName"],
        "input": prepared,
        "output_uri": output,
        "files": files,
        "predictions": total,
        "label_counts": {str(label): n for label, n in totals.items()},
        "label_shares": {str(label): (n / total if total else 0.0) for label, n in totals.items()},
        "mean_probability": probability / total if total else None,
    }
    summary["summary_uri"] = store.write(
        RunLayout(settings, run_id).batch_summary(), json.dumps(summary, indent=2).encode()
    )
    return summary
