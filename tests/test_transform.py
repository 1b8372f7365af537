"""Local batch transform from a CreateTransformJob request, with a real (tiny) BERT model.

The model is packed the way training packs it (``transformer/`` + ``code/inference.py`` in a
``model.tar.gz``), registered with the local CreateModel, and loaded by ``load_handler``.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.requests.deployment import model_request
from include.pipeline.requests.transform import transform_job_request
from include.pipeline.targets.local.endpoint import models
from include.pipeline.targets.local.lake import resolve
from include.pipeline.targets.local.sagemaker.transform import payload_batches, run_transform_job
from tests.aws_model import assert_valid
from tests.test_inference import tiny_bert_config

REPO = Path(__file__).resolve().parents[1]
WORDS = [
    "great",
    "love",
    "fit",
    "perfect",
    "bad",
    "poor",
    "small",
    "return",
    "okay",
    "fine",
    "dress",
    "fabric",
    "color",
    "size",
]
REVIEWS = [
    "love the fit perfect dress",
    "poor fabric bad color",
    "okay size fine",
    "great dress",
    "return it small size",
]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    """A lake holding one registered model: a random 2-layer BERT with 3 sentiment classes."""
    import torch
    from transformers import BertForSequenceClassification, BertTokenizerFast

    root = tmp_path_factory.mktemp("lake")
    work = tmp_path_factory.mktemp("model")
    vocab = work / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    torch.manual_seed(0)
    config = tiny_bert_config(len(WORDS) + 5, num_labels=3)
    staging = work / "archive"
    BertForSequenceClassification(config).save_pretrained(staging / "transformer")
    tokenizer.save_pretrained(staging / "transformer")
    (staging / "code").mkdir()
    shutil.copy(REPO / "include" / "jobs" / "inference.py", staging / "code" / "inference.py")
    archive = resolve("s3://bucket/models/tiny/model.tar.gz", root)
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted(staging.iterdir()):
            tar.add(item, arcname=item.name)
    models.create_model(
        model_request(
            model_name="tiny-model",
            image_uri="pytorch-inference:local",
            model_data_url="s3://bucket/models/tiny/model.tar.gz",
            role_arn="arn:aws:iam::000000000000:role/SageMakerExecutionRole",
            region="us-east-1",
        ),
        root,
    )
    return root


def _lines(texts) -> bytes:
    return "".join(json.dumps({"features": [t]}) + "\n" for t in texts).encode()


def transform_request(job: str, input_uri: str, **kw) -> dict:
    """A valid CreateTransformJob of ``tiny-model`` writing under the job's own folder, unless
    ``kw`` says otherwise."""
    output_uri = f"s3://bucket/batch/{job}/out"
    arguments = {"model_name": "tiny-model", "output_uri": output_uri, **kw}
    request = transform_job_request(job_name=job, input_uri=input_uri, **arguments)
    assert_valid("sagemaker", "CreateTransformJob", request)
    return request


def test_transform_scores_every_file_line_by_line(lake):
    atomic_write_bytes(resolve("s3://bucket/batch/in/part-1.jsonl", lake), _lines(REVIEWS))
    atomic_write_bytes(
        resolve("s3://bucket/batch/in/sub/part-2.jsonl", lake), b"\n" + _lines(REVIEWS[:2])
    )
    request = transform_request("score-1", "s3://bucket/batch/in/")
    logged: list[str] = []
    result = run_transform_job(request, lake=lake, log=logged.append)
    assert result["TransformJobStatus"] == "Completed", result.get("FailureReason")
    assert result["TransformOutput"]["S3OutputPath"] == "s3://bucket/batch/score-1/out"
    assert result["LocalStats"] == {"files": 2, "records": 7, "requests": 2}  # MultiRecord
    out = resolve("s3://bucket/batch/score-1/out", lake)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.out")) == [
        "part-1.jsonl.out",
        "sub/part-2.jsonl.out",
    ]
    answers = [json.loads(x) for x in (out / "part-1.jsonl.out").read_text().splitlines()]
    assert len(answers) == len(REVIEWS)
    assert {a["predicted_label"] for a in answers} <= {-1, 0, 1}
    # the same answers as asking the model one review at a time
    handler = models.load_handler("tiny-model", lake)
    for text, answer in zip(REVIEWS, answers, strict=True):
        body, _ = handler.predict(_lines([text]), "application/jsonlines", "application/jsonlines")
        single = json.loads(body)
        assert single["predicted_label"] == answer["predicted_label"]
        assert single["probability"] == pytest.approx(answer["probability"], abs=1e-4)
    assert any("part-1.jsonl" in line for line in logged)

    first = (out / "part-1.jsonl.out").read_bytes()
    again = run_transform_job(request, lake=lake, log=lambda _: None)  # re-run: same files
    assert again["TransformJobStatus"] == "Completed"
    assert (out / "part-1.jsonl.out").read_bytes() == first
    assert len(list(out.rglob("*"))) == 3  # two .out files and the sub folder


def test_single_record_sends_one_request_per_line(lake):
    atomic_write_bytes(resolve("s3://bucket/batch/single/a.jsonl", lake), _lines(REVIEWS))
    result = run_transform_job(
        transform_request("score-2", "s3://bucket/batch/single/", batch_strategy="SingleRecord"),
        lake=lake,
        log=lambda _: None,
    )
    assert result["TransformJobStatus"] == "Completed"
    assert result["LocalStats"]["requests"] == len(REVIEWS)
    out = resolve("s3://bucket/batch/score-2/out/a.jsonl.out", lake).read_text().splitlines()
    assert len(out) == len(REVIEWS)


def test_payload_batches_respect_the_size_limit():
    records = [(i, b"x" * 40) for i in range(1, 8)]
    batches = list(payload_batches(records, strategy="MultiRecord", max_bytes=100, source="f"))
    assert [[n for n, _ in b] for b in batches] == [[1, 2], [3, 4], [5, 6], [7]]
    assert all(sum(len(r) for _, r in b) + len(b) - 1 <= 100 for b in batches)
    unlimited = list(payload_batches(records, strategy="MultiRecord", max_bytes=None, source="f"))
    assert len(unlimited) == 1


def test_failures_are_reported_with_file_and_line(lake):
    bad = _lines(REVIEWS[:2]) + b'{"text": "no features key"}\n'
    atomic_write_bytes(resolve("s3://bucket/batch/bad/b.jsonl", lake), bad)
    result = run_transform_job(
        transform_request("score-3", "s3://bucket/batch/bad/", batch_strategy="SingleRecord"),
        lake=lake,
        log=lambda _: None,
    )
    assert result["TransformJobStatus"] == "Failed"
    assert "s3://bucket/batch/bad/b.jsonl lines 3-3" in result["FailureReason"]
    assert "features" in result["FailureReason"]
    assert not resolve("s3://bucket/batch/score-3/out/b.jsonl.out", lake).exists()

    big = b'{"features": ["' + b"great " * 200_000 + b'"]}\n'
    atomic_write_bytes(resolve("s3://bucket/batch/big/c.jsonl", lake), _lines(["fine"]) + big)
    result = run_transform_job(
        transform_request("score-4", "s3://bucket/batch/big/", max_payload_mb=1),
        lake=lake,
        log=print,
    )
    assert result["TransformJobStatus"] == "Failed"
    assert "c.jsonl line 2" in result["FailureReason"]
    assert "MaxPayloadInMB" in result["FailureReason"]

    missing = run_transform_job(
        transform_request("score-5", "s3://bucket/nothing/"), lake=lake, log=print
    )
    assert missing["TransformJobStatus"] == "Failed"
    assert "no input objects under s3://bucket/nothing/" in missing["FailureReason"]


def test_transform_request_rejects_bad_values():
    with pytest.raises(ValueError, match="RecordIO"):
        transform_job_request(
            job_name="j",
            model_name="m",
            input_uri="s3://b/i",
            output_uri="s3://b/o",
            split_type="RecordIO",
        )
    with pytest.raises(ValueError, match="/tmp/in"):
        transform_job_request(
            job_name="j", model_name="m", input_uri="/tmp/in", output_uri="s3://b/o"
        )
