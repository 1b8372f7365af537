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
sample. Re-ingesting that copy is a no-op in the lake (content-addressed); with ``training_data``
at ``accumulated`` the run then trains on the lake's accumulation, which holds those reviews.

Champion / challenger: before registering, the serving model (the champion) is evaluated on this
run's test split with the same evaluation job; the new model (the challenger) goes on only when
its accuracy is higher, otherwise the run records why not. The split is assigned per review by a
seeded hash, so a champion registered with the same seed and fractions (its lineage) never
trained on these test rows; :func:`champion_split` says when that does not hold, and the summary
shows both models side by side (:func:`comparison`).
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
    from include.pipeline import candidates
    from include.pipeline.tasks.deployment import current_model

    model_name = current_model(client, params["endpoint_name"])
    if not model_name:
        log.info("endpoint %s serves no model: no champion to beat", params["endpoint_name"])
        return None
    containers = served_containers(client.describe_model(ModelName=model_name), client)
    if len(containers) > 1:
        log.warning(
            "endpoint %s serves %s, an inference pipeline of %d containers (Autopilot) that the "
            "evaluation job cannot load: the challenger is not compared with it",
            params["endpoint_name"],
            model_name,
            len(containers),
        )
        return None
    layout = RunLayout(settings, run_id)
    request = evaluation_requests.evaluation_job_request(
        job_name=job_name("evaluate-champion", run_id),
        **code.script_job(settings),
        code_uri=code_uri,
        model_uri=containers[0]["ModelDataUrl"],
        test_uri=test_uri,
        output_uri=layout.champion_evaluation(),
        model_kind=candidates.of_image(containers[0]["Image"]).name,
    )
    return request


def served_containers(model: dict, client=None) -> list[dict]:
    """DescribeModel's containers in serving order: the PrimaryContainer, or an inference
    pipeline's ``Containers``. With ``client``, a container that names a model package (the
    endpoint's model is created from its approved version) stands for the package's containers
    (DescribeModelPackage), each with its image and model data."""
    primary = model.get("PrimaryContainer")
    containers = [primary] if primary else list(model.get("Containers") or [])
    if client is None:
        return containers
    return [c for container in containers for c in _package_containers(client, container)]


def _package_containers(client, container: dict) -> list[dict]:
    from include.pipeline.requests import registry as registry_requests

    package = container.get("ModelPackageName")
    if not package or container.get("ModelDataUrl"):
        return [container]
    described = client.describe_model_package(
        **registry_requests.describe_model_package_request(package)
    )
    return list((described.get("InferenceSpecification") or {}).get("Containers") or [])


def gate(evaluated: dict, champion: dict | None, params: dict) -> tuple[bool, str]:
    """``(register?, why)``: the accuracy floor, then the champion on the same test data; the
    champion's figure is named whichever stops the challenger."""
    accuracy = evaluation.from_job(evaluated).accuracy
    best = None
    if champion:
        best = evaluation.parse(
            champion["OutputFiles"]["evaluation"], "evaluate_champion's evaluation.json"
        ).accuracy
    if accuracy < params["min_accuracy"]:
        why = f"test accuracy {accuracy:.4f} < min_accuracy {params['min_accuracy']}"
        if best is not None:
            why += f" (the serving model's: {best:.4f} on the same test split)"
        return False, why
    if best is not None:
        if accuracy <= best:
            return False, (
                f"challenger accuracy {accuracy:.4f} does not beat the serving model's "
                f"{best:.4f} on the same test split"
            )
        return True, f"challenger {accuracy:.4f} beats the serving model's {best:.4f}"
    return True, f"test accuracy {accuracy:.4f} >= min_accuracy {params['min_accuracy']}"


def comparison(
    board: dict,
    challenger: dict | None,
    champion: dict | None,
    requests: tuple[dict | None, dict | None],
    basis: dict | None,
    params: dict,
) -> dict:
    """The summary's champion-vs-challenger entry: each model's test accuracy with its 95%
    Wilson interval and row count, the test data each was scored on (the same rows, when the
    URIs and counts agree), the split check (:func:`champion_split`) and the gate's decision,
    also when the accuracy floor stopped the challenger. ``requests``: the challenger's and the
    champion's evaluation requests."""

    def scored(evaluated: dict | None, request: dict | None) -> dict | None:
        if not evaluated or "evaluation" not in evaluated.get("OutputFiles", {}):
            return None
        report = evaluation.from_job(evaluated)
        return {
            "accuracy": report.accuracy,
            "accuracy_interval": list(report.accuracy_interval),
            "n_samples": report.n_samples,
            "test_uri": _test_uri(request),
        }

    new, served = scored(challenger, requests[0]), scored(champion, requests[1])
    entry: dict = {"challenger": None, "champion": None, "same_rows": None}
    if new is not None:
        entry["challenger"] = {"candidate": board.get("best"), **new}
        passed, why = gate(challenger or {}, champion if served else None, params)
        entry["decision"] = {"register": passed, "why": why}
    if served is not None:
        entry["champion"] = {
            "model_name": (basis or {}).get("model_name"),
            "model_package_arn": (basis or {}).get("model_package_arn"),
            **served,
        }
        if new is not None:
            entry["same_rows"] = (
                new["test_uri"] == served["test_uri"] and new["n_samples"] == served["n_samples"]
            )
    if basis is not None:
        entry["split"] = {
            k: basis[k] for k in ("champion_split", "challenger_split", "same_split", "note")
        }
    elif served is None:
        entry["split"] = None
        entry["note"] = f"no model served {params['endpoint_name']} before this run"
    return entry


def _test_uri(request: dict | None) -> str | None:
    """The test input of an evaluation request (its ``test`` processing input)."""
    for item in (request or {}).get("ProcessingInputs", []):
        if item.get("InputName") == "test":
            return item.get("S3Input", {}).get("S3Uri")
    return None


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


def serving_version(client, served: list[dict]) -> dict | None:
    """The registry version (DescribeModelPackage) whose containers are the served ones
    (matched by ``ModelDataUrl``, in order); None when no version holds them."""
    from include.pipeline.requests import registry as registry_requests
    from include.pipeline.tasks.registry import MODEL_NAME

    served_urls = [c["ModelDataUrl"] for c in served]
    group = registry_requests.package_group_name(MODEL_NAME)
    for summary in _versions(client, group):
        described = client.describe_model_package(
            **registry_requests.describe_model_package_request(summary["ModelPackageArn"])
        )
        containers = (described.get("InferenceSpecification") or {}).get("Containers") or []
        if [c.get("ModelDataUrl") for c in containers] == served_urls:
            return described
    return None


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
    served = served_containers(client.describe_model(ModelName=model_name), client)
    model_url = served[-1]["ModelDataUrl"] if served else ""
    described = serving_version(client, served)
    if described is None:
        group = registry_requests.package_group_name(MODEL_NAME)
        raise NoServingDataset(
            f"endpoint {endpoint_name!r} serves {model_name} ({model_url}), which no version of "
            f"model package group {group!r} holds"
        )
    arn = described["ModelPackageArn"]
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


def champion_split(client, params: dict) -> dict:
    """Whether this run's test rows are unseen by the serving model: the split it was trained
    with (its registry lineage) against this run's. Splits go by each review's seeded hash, so
    under the same seed and fractions no test row of this run was in its training or validation
    split; otherwise, or when its split is not recorded, ``note`` says so."""
    from include.pipeline.requests import registry as registry_requests
    from include.pipeline.tasks.deployment import current_model
    from include.pipeline.tasks.registry import run_split

    ours = run_split(params)
    model_name = current_model(client, params["endpoint_name"])
    served = (
        served_containers(client.describe_model(ModelName=model_name), client) if model_name else []
    )
    described = serving_version(client, served) if served else None
    lineage = (described or {}).get("CustomerMetadataProperties") or {}
    theirs = {k: lineage[k] for k in registry_requests.SPLIT_KEYS if k in lineage}
    basis = {
        "model_name": model_name,
        "model_package_arn": (described or {}).get("ModelPackageArn"),
        "champion_split": theirs or None,
        "challenger_split": ours,
        "same_split": theirs == ours,
    }
    if theirs == ours:
        note = "both models were trained with the same split: no test row was in either's training"
    elif not theirs:
        note = (
            "the serving model's split is not recorded in the registry: it may have trained on "
            "some of these test rows, which would favour it"
        )
    else:
        note = (
            f"the serving model was trained with another split ({_split_text(theirs)}; this run: "
            f"{_split_text(ours)}): it may have trained on some of these test rows, which would "
            "favour it"
        )
    return {**basis, "note": note}


def _split_text(split: dict) -> str:
    return ", ".join(f"{k.removeprefix('split.')} {v}" for k, v in split.items())


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
