"""Feedback into training: the human labels a run trains on, and champion / challenger.

Labels: every stored label of the endpoint (:mod:`include.pipeline.documents.labels`) joins the
run's base data as rows in the prepared shape, in a second input folder of the prepare job. They
are split like base rows, by the seeded hash of their review id (a hash of sentiment, text and
category), so a label lands in the same split in every run; a label whose text is already in the
base data is left out (the base row keeps its label and its split), so no review is in two splits
and no labeled text enters the test split a second time.

Data: a run started by ``reviews_drift`` or ``reviews_labeled`` has no input file of its own; it
ingests the raw copy the serving model was trained on (:func:`serving_dataset`: the endpoint's
model -> its registry version, matched by ``ModelDataUrl`` -> the ``data_hash`` of its lineage ->
``raw/<hash>/``), so the labels join the same base data and it never falls back to the generated
sample. Re-ingesting that copy is a no-op in the lake (content-addressed).

Champion / challenger: before registering, the serving model (the champion) is evaluated on this
run's test split with the same evaluation job; the new model (the challenger) goes on only when
its accuracy is higher, otherwise the run records why not.
"""

from __future__ import annotations

import csv
import io
import logging

from include.pipeline import storage
from include.pipeline.documents import evaluation
from include.pipeline.documents import labels as label_docs
from include.pipeline.layout import Layout, RunLayout
from include.pipeline.requests import evaluation as evaluation_requests
from include.pipeline.requests import features as feature_requests
from include.pipeline.requests.common import job_name, processing_input
from include.pipeline.settings import Settings
from include.pipeline.tasks import code

log = logging.getLogger(__name__)
LABELS_INPUT = "labels"


def export_labels(settings: Settings, params: dict, *, run_id: str, raw_hash: str) -> dict:
    """Write the labels this run trains on to ``runs/<run_id>/labels/`` (``uri`` '' if none)."""
    store = storage.for_settings(settings)
    labels = label_docs.read_all(store, settings, params["endpoint_name"])
    if not labels:
        return {"uri": "", "labels": 0, "rows": 0}
    base = store.read(Layout(settings).dataset_csv(raw_hash)).decode("utf-8")
    texts = {row.get("review_body", "").strip() for row in csv.DictReader(io.StringIO(base))}
    body = label_docs.prepared_csv(labels, exclude_texts=texts)
    rows = len(body.splitlines()) - 1
    if not rows:
        return {"uri": "", "labels": len(labels), "rows": 0}
    prefix = RunLayout(settings, run_id).labels()
    store.write(f"{prefix}labels.csv", body)
    log.info(
        "training on %d human label(s) (%d already in the base data)", rows, len(labels) - rows
    )
    return {"uri": prefix, "labels": len(labels), "rows": rows}


def with_labels(request: dict, labels_uri: str) -> dict:
    """The prepare request with the labels as a second folder of its reviews input."""
    if not labels_uri:
        return request
    extra = processing_input(
        LABELS_INPUT, labels_uri, f"{feature_requests.INPUT_DIR}/{LABELS_INPUT}"
    )
    return {**request, "ProcessingInputs": [*request["ProcessingInputs"], extra]}


def champion_evaluation_request(
    settings: Settings, client, params: dict, *, run_id: str, code_uri: str, test_uri: str
) -> dict | None:
    """The evaluation job of the serving model on this run's test split (``test_uri``, the
    query's result object); None when nothing serves yet (the first deployment has no champion)."""
    from include.pipeline.tasks.candidates import candidate_of_image
    from include.pipeline.tasks.deployment import current_model

    model_name = current_model(client, params["endpoint_name"])
    if not model_name:
        log.info("endpoint %s serves no model: no champion to beat", params["endpoint_name"])
        return None
    model = client.describe_model(ModelName=model_name)
    layout = RunLayout(settings, run_id)
    request = evaluation_requests.evaluation_job_request(
        job_name=job_name("evaluate-champion", run_id),
        **code.script_job(settings),
        code_uri=code_uri,
        model_uri=model["PrimaryContainer"]["ModelDataUrl"],
        test_uri=test_uri,
        output_uri=layout.champion_evaluation(),
        model_kind=candidate_of_image(model["PrimaryContainer"]["Image"]),
    )
    return request


def gate(evaluated: dict, champion: dict | None, params: dict) -> tuple[bool, str]:
    """``(register?, why)``: the accuracy floor, then the champion on the same test data."""
    accuracy = evaluation.from_job(evaluated).accuracy
    if accuracy < params["min_accuracy"]:
        return False, f"test accuracy {accuracy:.4f} < min_accuracy {params['min_accuracy']}"
    if champion:
        best = evaluation.parse(
            champion["OutputFiles"]["evaluation"], "evaluate_champion's evaluation.json"
        ).accuracy
        if accuracy <= best:
            return False, (
                f"challenger accuracy {accuracy:.4f} does not beat the serving model's "
                f"{best:.4f} on the same test split"
            )
        return True, f"challenger {accuracy:.4f} beats the serving model's {best:.4f}"
    return True, f"test accuracy {accuracy:.4f} >= min_accuracy {params['min_accuracy']}"


class NoServingDataset(LookupError):
    """A retraining run found no data the serving model was trained on."""


def _versions(client, group: str):
    """Every version of ``group``, newest first (all pages); none when the group does not exist."""
    from botocore.exceptions import ClientError

    from include.pipeline.requests import registry as registry_requests

    request = {**registry_requests.list_model_packages_request(group), "SortOrder": "Descending"}
    while True:
        try:
            page = client.list_model_packages(**request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
                return
            raise
        yield from page["ModelPackageSummaryList"]
        if not page.get("NextToken"):
            return
        request["NextToken"] = page["NextToken"]


def serving_dataset(settings: Settings, client, endpoint_name: str) -> dict:
    """The raw copy the endpoint's serving model was trained on, from the registry's lineage:
    ``{input_uri, raw_hash, model_name, model_package_arn}``. Raises :class:`NoServingDataset`
    naming what is missing (no endpoint, a model no registry version holds, no ``data_hash``,
    no raw copy): a retraining run must not guess its data."""
    from include.pipeline.requests import registry as registry_requests
    from include.pipeline.tasks.deployment import current_model
    from include.pipeline.tasks.registry import MODEL_NAME

    model_name = current_model(client, endpoint_name)
    if not model_name:
        raise NoServingDataset(f"endpoint {endpoint_name!r} serves no model")
    model_url = client.describe_model(ModelName=model_name)["PrimaryContainer"]["ModelDataUrl"]
    group = registry_requests.package_group_name(MODEL_NAME)
    for summary in _versions(client, group):
        arn = summary["ModelPackageArn"]
        described = client.describe_model_package(
            **registry_requests.describe_model_package_request(arn)
        )
        containers = (described.get("InferenceSpecification") or {}).get("Containers") or []
        if not any(c.get("ModelDataUrl") == model_url for c in containers):
            continue
        raw_hash = (described.get("CustomerMetadataProperties") or {}).get("data_hash")
        if not raw_hash:
            raise NoServingDataset(f"model package {arn} records no data_hash in its lineage")
        folder = Layout(settings).raw_folder(raw_hash)
        raw = sorted(storage.for_settings(settings).list(folder))
        if not raw:
            raise NoServingDataset(f"model package {arn}: no raw copy of its data in {folder}")
        return {
            "input_uri": raw[0],
            "raw_hash": raw_hash,
            "model_name": model_name,
            "model_package_arn": arn,
        }
    raise NoServingDataset(
        f"endpoint {endpoint_name!r} serves {model_name} ({model_url}), which no version of "
        f"model package group {group!r} holds"
    )


def retraining_input(settings: Settings, client, params: dict) -> dict:
    """The input of a run started by drift or labels: the Param ``input_uri`` when one is set,
    else the serving model's dataset (:func:`serving_dataset`)."""
    if params.get("input_uri"):
        return {"input_uri": params["input_uri"]}
    found = serving_dataset(settings, client, params["endpoint_name"])
    log.info(
        "retraining %s on the data %s was trained on: %s",
        params["endpoint_name"],
        found["model_package_arn"],
        found["input_uri"],
    )
    return found
