"""Rows per second of the prepare job vs the bare fast tokenizer on the same texts, same run.

Uses ../shared/data/womens_clothing_reviews_dev.csv when present, else a generated file of the
same size. Measures 1x and 10x the rows (copies made distinct so none is de-duplicated away).
Last line: one JSON object; ``throughput_ratio`` = prepare rows/s / tokenizer rows/s (goal >= 0.7),
``scaling_ratio`` = rows/s at 10x / rows/s at 1x (near 1 = linear).

    .venv/bin/python benchmarks/prepare_throughput.py
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from include.jobs import prepare  # noqa: E402
from include.pipeline.settings import default_model  # noqa: E402

REAL = ROOT / "../shared/data/womens_clothing_reviews_dev.csv"
MAX_LEN = 128


def base_frame():
    import pandas as pd

    if REAL.exists():
        return pd.read_csv(REAL, dtype=str, keep_default_na=False), "real"
    rng = random.Random(0)
    words = [
        "dress",
        "fit",
        "love",
        "small",
        "large",
        "fabric",
        "color",
        "true",
        "size",
        "soft",
        "cheap",
        "return",
        "great",
    ]
    rows = [
        {
            "sentiment": str(rng.choice((-1, 0, 1))),
            "review_body": " ".join(rng.choice(words) for _ in range(rng.randint(10, 120))),
            "product_category": rng.choice(("Dresses", "Knits", "Blouses")),
        }
        for _ in range(6004)
    ]
    return pd.DataFrame(rows), "generated"


def write_input(folder: Path, frame, copies: int) -> list[str]:
    import pandas as pd

    parts = [
        frame.assign(review_body=frame["review_body"] + (f" #{k}" if k else ""))
        for k in range(copies)
    ]
    data = pd.concat(parts, ignore_index=True)
    folder.mkdir(parents=True, exist_ok=True)
    data.to_csv(folder / "reviews.csv", index=False)
    return data["review_body"].str.strip().tolist()


def bare(model: str, texts: list[str]) -> float:
    from transformers import AutoTokenizer

    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model)
    for i in range(0, len(texts), 1024):
        tok(texts[i : i + 1024], padding="max_length", truncation=True, max_length=MAX_LEN,
            return_attention_mask=True, return_tensors="np")  # fmt: skip
    return len(texts) / (time.perf_counter() - start)


def job(model: str, inp: Path, out: Path, rows: int) -> float:
    args = prepare.parse_args([
        "--input-data", str(inp), "--output-data", str(out),
        "--train-split-percentage", "0.9", "--validation-split-percentage", "0.05",
        "--test-split-percentage", "0.05", "--balance-mode", "none",
        "--max-seq-length", str(MAX_LEN), "--pretrained-model", model,
        "--feature-group-name", "bench", "--event-time", "2024-01-01T00:00:00Z",
    ])  # fmt: skip
    start = time.perf_counter()
    prepare.prepare(args, log=lambda _: None)
    return rows / (time.perf_counter() - start)


def main() -> None:
    model = default_model("local")
    frame, source = base_frame()
    result: dict = {"source": source, "model": Path(model).name, "max_seq_length": MAX_LEN}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        warm = write_input(tmp / "warm", frame.head(200), 1)
        bare(model, warm), job(model, tmp / "warm", tmp / "warm-out", len(warm))
        for copies in (1, 10):
            texts = write_input(tmp / f"in{copies}", frame, copies)
            tok_rps = bare(model, texts)
            job_rps = job(model, tmp / f"in{copies}", tmp / f"out{copies}", len(texts))
            result[f"rows_{copies}x"] = len(texts)
            result[f"tokenizer_rows_per_s_{copies}x"] = round(tok_rps, 1)
            result[f"prepare_rows_per_s_{copies}x"] = round(job_rps, 1)
            result[f"throughput_{copies}x_ratio"] = round(job_rps / tok_rps, 3)
    result["throughput_ratio"] = result["throughput_1x_ratio"]
    result["scaling_ratio"] = round(
        result["prepare_rows_per_s_10x"] / result["prepare_rows_per_s_1x"], 3
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
