"""The human_review DAG's Airflow-side logic: which served reviews a person should label, what
the reviewer is shown, where the answers go, and when there are enough new labels to retrain.

Selection, over the captured traffic of the window: every review the model answered with a
probability below ``confidence_threshold`` (what the model is unsure of), plus a random sample
of the confident ones (``sample_rate``; chosen by a hash of the review id, so a re-run picks the
same ones) to measure the model without the bias of picking hard cases. Reviews that already
have a label are never asked again.

An answer becomes (idempotently) a label document (:mod:`include.pipeline.documents.labels`) and,
for single-review requests, a ground-truth line by inference id, which the rollout DAG's
``derive_rewards`` turns into the bandit's rewards.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from include.pipeline import rollout, storage
from include.pipeline.core.names import short_hash
from include.pipeline.documents import labels as label_docs
from include.pipeline.settings import Settings
from include.pipeline.times import utc

log = logging.getLogger(__name__)
ANNOUNCED_FILE = "_announced.json"


def served_models(client, endpoint_name: str) -> tuple[str, dict[str, str]]:
    """``(capture prefix, {variant: model name})`` of the endpoint's current config."""
    endpoint = client.describe_endpoint(EndpointName=endpoint_name)
    config = client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    capture = config.get("DataCaptureConfig") or {}
    models = {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}
    return capture.get("DestinationS3Uri", "").rstrip("/"), models


def _sampled(rid: str, rate: float, seed: int) -> bool:
    return int(short_hash(seed, rid, length=8), 16) / 16**8 < rate


def candidates(
    settings: Settings,
    client,
    params: dict,
    *,
    since: datetime,
    until: datetime,
) -> list[dict]:
    """The review tasks of the window: low-confidence answers plus the random sample."""
    endpoint = params["endpoint_name"]
    capture_uri, models = served_models(client, endpoint)
    if not capture_uri:
        log.info("endpoint %s captures no traffic: nothing to review", endpoint)
        return []
    store = storage.for_settings(settings)
    labeled = {
        u.rsplit("/", 1)[-1].removesuffix(".json")
        for u in store.list(label_docs.prefix(settings, endpoint))
    }
    threshold, rate = float(params["confidence_threshold"]), float(params["sample_rate"])
    found: dict[str, dict] = {}
    for variant, model in models.items():
        for uri in store.list(f"{capture_uri}/{endpoint}/{variant}/"):
            if not uri.endswith(".jsonl"):
                continue
            for record in rollout.read_capture(store.read(uri).splitlines(), source=uri):
                meta = record["eventMetadata"]
                when = meta.get("inferenceTime")
                if when and not since <= utc(when) < until:
                    continue
                for review in _reviews(record, uri):
                    rid = label_docs.review_id(meta.get("eventId", uri), review["index"])
                    if rid in labeled or rid in found or review["probability"] is None:
                        continue
                    if review["probability"] < threshold:
                        selection = "low_confidence"
                    elif _sampled(rid, rate, int(params.get("seed") or 0)):
                        selection = "sample"
                    else:
                        continue
                    found[rid] = {
                        **review,
                        "review_id": rid,
                        "endpoint_name": endpoint,
                        "variant": variant,
                        "model_version": model,
                        "inference_id": meta.get("inferenceId") or "",
                        "selection": selection,
                    }
    chosen = sorted(
        found.values(), key=lambda r: (r["selection"] != "low_confidence", r["probability"])
    )
    return chosen[: int(params["max_reviews"])]


def _reviews(record: dict, source: str) -> list[dict]:
    """``[{index, text, category, predicted_label, probability, request_size}]`` of a record."""
    data = record["captureData"]
    try:
        body = json.loads(rollout._decode(data["endpointInput"]))
        texts = [str(t) for t in body["features"]]
    except (ValueError, KeyError, TypeError):
        log.warning("%s: a captured request without a 'features' list; skipped", source)
        return []
    categories = body.get("product_category") if isinstance(body, dict) else None
    if not isinstance(categories, list):
        categories = [categories] * len(texts)
    answers: list = []
    if data.get("endpointOutput"):
        try:
            answers = json.loads(rollout._decode(data["endpointOutput"]))
        except ValueError:
            answers = []
    if not isinstance(answers, list) or len(answers) != len(texts):
        answers = [None] * len(texts)
    return [
        {
            "index": i,
            "text": text,
            "category": categories[i] or "",
            "predicted_label": (answers[i] or {}).get("predicted_label"),
            "probability": (answers[i] or {}).get("probability"),
            "request_size": len(texts),
        }
        for i, text in enumerate(texts)
    ]


def review_prompt(review: dict) -> dict:
    """What the reviewer sees in Airflow's UI: the HITL operator's subject and body."""
    why = "the model is unsure" if review["selection"] == "low_confidence" else "random check"
    return {
        "subject": f"Sentiment of review {review['review_id'][:12]} ({why})",
        "body": (
            f"> {review['text']}\n\n"
            f"**Model**: `{review['predicted_label']}` with probability "
            f"{review['probability']:.3f} ({review['model_version']})\n\n"
            "Pick **-1** (negative), **0** (neutral) or **1** (positive)."
        ),
        "review": review,
    }


def record_answer(
    settings: Settings, review: dict, *, label: int, reviewer: str, answered_at
) -> bool:
    """Store one answer as a label (and ground truth); False when the review had one already."""
    when = utc(answered_at) if answered_at else datetime.now(UTC)
    doc = label_docs.Label(
        review_id=review["review_id"],
        sentiment=int(label),
        review_body=review["text"],
        product_category=review.get("category") or "",
        predicted_label=review.get("predicted_label"),
        probability=review.get("probability"),
        model_version=review["model_version"],
        endpoint_name=review["endpoint_name"],
        inference_id=review.get("inference_id") or "",
        selection=review["selection"],
        reviewer=reviewer,
        answered_at=when.isoformat(),
    )
    store = storage.for_settings(settings)
    written = label_docs.store(store, settings, doc)
    if written and doc.inference_id and review.get("request_size") == 1:
        from include.pipeline.tasks.rollout import write_ground_truth

        write_ground_truth(
            settings,
            doc.endpoint_name,
            {doc.inference_id: doc.sentiment},
            time=when,
            name=doc.review_id,
        )
    return written


def labeled_event(settings: Settings, params: dict) -> dict | None:
    """The ``reviews_labeled`` event extra when at least ``min_new_labels`` labels arrived since
    the last event (the count is kept in ``labels/<endpoint>/_announced.json``), else None."""
    endpoint = params["endpoint_name"]
    store = storage.for_settings(settings)
    all_labels = label_docs.read_all(store, settings, endpoint)
    marker = label_docs.prefix(settings, endpoint) + ANNOUNCED_FILE
    announced = store.read_json(marker)["labels"] if store.exists(marker) else 0
    new = len(all_labels) - announced
    if new < int(params["min_new_labels"]):
        log.info("%d new label(s) (< %s): no retraining yet", new, params["min_new_labels"])
        return None
    store.write(marker, json.dumps({"labels": len(all_labels)}).encode())
    return {
        "endpoint_name": endpoint,
        "labels": len(all_labels),
        "new_labels": new,
        "labels_prefix": label_docs.prefix(settings, endpoint),
        "quality": label_docs.quality(all_labels),
    }


# ---------------------------------------------------------------- Amazon A2I option


def a2i_review(settings: Settings, reviews: list[dict], *, flow_definition_arn: str = "") -> dict:
    """``PIPELINE_REVIEW_UI=a2i``: one human loop per review (StartHumanLoop, named from the
    review id, so a re-run starts none twice); answers of completed loops are read from the
    loop's S3 output and stored like Airflow answers. Loops still open are picked up by the
    next run (their reviews have no label yet, so they are selected again)."""
    from botocore.exceptions import ClientError

    from include.pipeline.requests import human_review as a2i

    arn = flow_definition_arn or a2i_flow_definition(settings)
    runtime = targets_client(settings, "sagemaker-a2i-runtime")
    store = storage.for_settings(settings)
    started = stored = 0
    for review in reviews:
        name = a2i.human_loop_name(review["review_id"])
        try:
            loop = runtime.describe_human_loop(HumanLoopName=name)
        except ClientError:
            runtime.start_human_loop(
                **a2i.start_human_loop_request(flow_definition_arn=arn, review=review)
            )
            started += 1
            continue
        if loop["HumanLoopStatus"] == "Completed":
            output = store.read_json(loop["HumanLoopOutput"]["OutputS3Uri"])
            label, worker = a2i.answer_from_output(output)
            if label is not None:
                stored += record_answer(
                    settings, review, label=label, reviewer=worker, answered_at=None
                )
    return {"started": started, "stored": stored}


A2I_UI_NAME = "reviews-sentiment-review-ui"
A2I_FLOW_NAME = "reviews-sentiment-review-flow"


def a2i_flow_definition(settings: Settings) -> str:
    """The flow definition the human loops run on: the connection extra's
    ``a2i_flow_definition_arn``, or the project's own, created once (worker UI + flow definition)
    for the private workteam in ``a2i_workteam_arn``; an existing one is reused."""
    from botocore.exceptions import ClientError

    from include.pipeline.layout import Layout
    from include.pipeline.requests import human_review as a2i

    if settings.extra.get("a2i_flow_definition_arn"):
        return settings.extra["a2i_flow_definition_arn"]
    workteam = settings.extra.get("a2i_workteam_arn", "")
    if not workteam:
        raise ValueError(
            "PIPELINE_REVIEW_UI=a2i needs, in the AWS connection extra, either "
            "'a2i_flow_definition_arn' or 'a2i_workteam_arn' (a private workteam) to create one"
        )
    sagemaker = targets_client(settings, "sagemaker")
    try:
        ui_arn = sagemaker.describe_human_task_ui(HumanTaskUiName=A2I_UI_NAME)["HumanTaskUiArn"]
    except ClientError:
        ui_arn = sagemaker.create_human_task_ui(**a2i.human_task_ui_request(name=A2I_UI_NAME))[
            "HumanTaskUiArn"
        ]
    try:
        described = sagemaker.describe_flow_definition(FlowDefinitionName=A2I_FLOW_NAME)
        return described["FlowDefinitionArn"]
    except ClientError:
        request = a2i.flow_definition_request(
            name=A2I_FLOW_NAME,
            role_arn=settings.role_arn,
            human_task_ui_arn=ui_arn,
            workteam_arn=workteam,
            output_uri=Layout(settings).human_loops(),
            settings=settings,
        )
        return sagemaker.create_flow_definition(**request)["FlowDefinitionArn"]


def targets_client(settings: Settings, service: str):
    from include.pipeline import targets

    return targets.client(settings, service)
