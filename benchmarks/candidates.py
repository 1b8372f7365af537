"""Benchmark the text candidates on the real dev file: test accuracy and time on this machine.

BlazingText (the course's hyperparameters, fastText locally) and Autopilot (the local FLAML
engine) run through the same local engines the pipeline uses, on one seeded 80/10/10 split of
``womens_clothing_reviews_dev.csv``; usage: ``python -m benchmarks.candidates [CSV]``.
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

from include.jobs.prepare_text import blazingtext_line, tokenize
from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.requests import automl, blazingtext
from include.pipeline.requests.images import image_uri
from include.pipeline.targets.local.endpoint import models
from include.pipeline.targets.local.lake import resolve
from include.pipeline.targets.local.sagemaker import automl as automl_engine
from include.pipeline.targets.local.sagemaker import jobs

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "womens_clothing_reviews_dev.csv"
ROLE = "arn:aws:iam::000000000000:role/SageMakerExecutionRole"


def main(path: Path = DEV) -> None:
    import random

    with path.open(encoding="utf-8", newline="") as fh:
        rows = [(int(r["sentiment"]), r["review_body"]) for r in csv.DictReader(fh)]
    random.Random(42).shuffle(rows)
    n = len(rows)
    train, val, test = rows[: int(0.8 * n)], rows[int(0.8 * n) : int(0.9 * n)], rows[int(0.9 * n) :]
    lake = Path(tempfile.mkdtemp(prefix="bench-lake-"))
    for name, split in (("train", train), ("validation", val)):
        text = "".join(blazingtext_line(s, t) + "\n" for s, t in split)
        atomic_write_bytes(resolve(f"s3://b/bt/{name}/{name}.txt", lake), text.encode())
    request = blazingtext.blazingtext_training_request(
        job_name="bench-blazingtext",
        role_arn=ROLE,
        image_uri=image_uri("blazingtext", "us-east-1"),
        train_uri="s3://b/bt/train",
        validation_uri="s3://b/bt/validation",
        output_uri="s3://b/models",
    )
    start = time.perf_counter()
    described = jobs.run_training_job(request, lake=lake, log=lambda _: None)
    bt_time = time.perf_counter() - start
    model_dir = models.extract_archive(
        resolve(described["ModelArtifacts"]["S3ModelArtifacts"], lake), lake
    )
    from include.pipeline.targets.local.sagemaker import blazingtext as bt_serving

    model = bt_serving.model_fn(str(model_dir))
    predicted = bt_serving.predict_fn({"instances": [tokenize(t) for _, t in test], "k": 1}, model)
    bt_acc = sum(
        p["label"][0] == f"__label__{s}" for p, (s, _) in zip(predicted, test, strict=True)
    )
    print(f"blazingtext: test accuracy {bt_acc / len(test):.3f}, training {bt_time:.1f} s")

    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(("sentiment", "review_body"))
    writer.writerows((s, " ".join(t.split())) for s, t in train + val)
    atomic_write_bytes(resolve("s3://b/automl/train/train.csv", lake), buffer.getvalue().encode())
    request = automl.automl_job_request(
        job_name="bench-automl",
        role_arn=ROLE,
        input_uri="s3://b/automl/train",
        output_uri="s3://b/automl/out",
    )
    start = time.perf_counter()
    described = automl_engine.run_automl_job(request, lake=lake, log=lambda _: None)
    am_time = time.perf_counter() - start
    from include.pipeline.targets.local.sagemaker import automl_serving

    container = described["BestCandidate"]["InferenceContainers"][0]
    model_dir = models.extract_archive(resolve(container["ModelDataUrl"], lake), lake)
    candidate = automl_serving.model_fn(str(model_dir))
    predicted = automl_serving.predict_fn([t for _, t in test], candidate)
    am_acc = sum(p[0] == str(s) for p, (s, _) in zip(predicted, test, strict=True))
    print(
        f"automl ({described['BestCandidate']['CandidateName']}): test accuracy "
        f"{am_acc / len(test):.3f}, job {am_time:.1f} s"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEV)
