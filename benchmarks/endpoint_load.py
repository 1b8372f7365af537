"""Load on the local endpoint server (loopback only) with the packaged MiniLM, against direct
``predict_fn`` calls on the same inputs in this process.

Measures p50/p99 latency at concurrency 1 and 8 and throughput at both (one review per
request, keep-alive HTTP connections), side by side in alternating blocks, errors, and the
server's resident memory over a run of ``--duration`` seconds at concurrency 8. Alongside, in
this process: ``predict_fn`` on one review (the latency floor) and on 8 reviews at once (the
batching ceiling: what concurrency 8 would reach if every forward pass merged 8 requests, which
on a small CPU can be slower than single passes). Before the throughput blocks a short warm-up
at concurrency 8 lets the server observe its shapes of forward pass (its serving policy); the
figures it observed are printed as ``forward_passes``. Goals: p50 at concurrency 1 <= 1.15x
direct, throughput at concurrency 8 >= 1.0x that at concurrency 1, 0 errors, memory flat.
Prints one JSON object last.

    .venv/bin/python benchmarks/endpoint_load.py [--duration 60] [--requests 200]
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from include.jobs import inference  # noqa: E402
from include.pipeline.requests.training import DEFAULT_HYPERPARAMETERS  # noqa: E402
from include.pipeline.settings import default_model  # noqa: E402
from include.pipeline.targets.local.endpoint import client as endpoint_client  # noqa: E402
from include.pipeline.targets.local.endpoint import models  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "womens_clothing_reviews_dev.csv"


def reviews(n: int) -> list[str]:
    if DATA.exists():
        with DATA.open(newline="") as fh:
            rows = [r["review_body"] for r in csv.DictReader(fh) if r["review_body"].strip()]
        return rows[:n]
    words = [
        "the",
        "dress",
        "fits",
        "well",
        "but",
        "the",
        "fabric",
        "feels",
        "cheap",
        "and",
        "the",
        "color",
        "is",
        "off",
    ]
    return [" ".join(words[(i % 5) :] + words[: (i % 5)]) for i in range(n)]


def build_archive(lake: Path, quantization: str, runtime: str) -> str:
    """The MiniLM with a (random) 3-class head, in the documented model.tar.gz layout, served
    with ``quantization`` on ``runtime`` (its inference_config.json; onnxruntime: model.onnx)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = default_model("local")
    stage = lake / "_stage"
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=3)
    model.save_pretrained(stage / "transformer")
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.save_pretrained(stage / "transformer")
    if runtime == "onnxruntime":
        inference.export(model, tokenizer, stage / "transformer")
    config = {"max_seq_length": 128, "quantization": quantization, "runtime": runtime}
    (stage / inference.CONFIG_FILE).write_text(json.dumps(config))
    (stage / "code").mkdir(parents=True)
    (stage / "code" / "inference.py").write_text((REPO / "include/jobs/inference.py").read_text())
    archive = lake / "bucket" / "models" / "minilm" / "model.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted(stage.iterdir()):
            tar.add(item, arcname=item.name)
    models.create_model(
        {
            "ModelName": "minilm",
            "ExecutionRoleArn": "arn:aws:iam::000000000000:role/SageMakerExecutionRole",
            "PrimaryContainer": {
                "Image": "local",
                "ModelDataUrl": "s3://bucket/models/minilm/model.tar.gz",
            },
        },
        lake,
    )
    return str(stage)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Client:
    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def invoke(self, text: str) -> bool:
        body = json.dumps({"features": [text]})
        self.conn.request(
            "POST", "/endpoints/bench/invocations", body, {"Content-Type": "application/json"}
        )
        response = self.conn.getresponse()
        response.read()
        return response.status == 200


def run_load(
    port: int,
    texts: list[str],
    concurrency: int,
    seconds: float | None,
    count: int | None,
    on_tick=None,
):
    """(latencies, errors, elapsed) for ``concurrency`` keep-alive clients."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(10**9))

    def worker():
        client = Client(port)
        while not stop.is_set():
            i = next(counter)
            if count is not None and i >= count:
                return
            start = time.perf_counter()
            ok = client.invoke(texts[i % len(texts)])
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    if seconds is not None:
        while time.perf_counter() - began < seconds:
            time.sleep(min(5.0, seconds))
            if on_tick:
                on_tick()
        stop.set()
    for t in threads:
        t.join()
    return latencies, errors[0], time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=60.0, help="memory run, seconds")
    parser.add_argument("--requests", type=int, default=200, help="requests per latency phase")
    parser.add_argument(
        "--quantization",
        choices=inference.QUANTIZATIONS,
        default=DEFAULT_HYPERPARAMETERS["local"]["serving_quantization"],
        help="how the model is served (default: what the local target's training writes)",
    )
    parser.add_argument(
        "--runtime",
        choices=inference.RUNTIMES,
        default=DEFAULT_HYPERPARAMETERS["local"]["serving_runtime"],
        help="what runs it (default: what the local target's training writes)",
    )
    args = parser.parse_args()
    texts = reviews(args.requests)

    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp)
        stage = build_archive(lake, args.quantization, args.runtime)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        url = endpoint_client.ensure_server(lake, port=port, timeout=120)
        pid = int(endpoint_client.pid_path(lake).read_text())
        try:
            sm = endpoint_client.client("sagemaker", url)
            sm.create_endpoint_config(
                EndpointConfigName="bench",
                ProductionVariants=[
                    {"VariantName": "AllTraffic", "ModelName": "minilm", "InitialInstanceCount": 1}
                ],
            )
            sm.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
            status = endpoint_client.wait_for_endpoint("bench", url, timeout=120)["EndpointStatus"]
            assert status == "InService", status

            # latency, side by side: each review goes direct (the same contract in this
            # process) and then through the server, so load changes hit both alike
            model = inference.model_fn(stage)
            client = Client(port)
            for text in texts[:10]:
                inference.predict_fn([text], model)
                client.invoke(text)
            direct, c1, e1 = [], [], 0
            batched = []  # seconds per 8-review predict_fn call
            for i, text in enumerate(texts):
                start = time.perf_counter()
                inference.predict_fn([text], model)
                direct.append(time.perf_counter() - start)
                start = time.perf_counter()
                e1 += 0 if client.invoke(text) else 1
                c1.append(time.perf_counter() - start)
                if i % 8 == 7:
                    start = time.perf_counter()
                    inference.predict_fn(texts[i - 7 : i + 1], model)
                    batched.append(time.perf_counter() - start)
            del model

            # the server learns which forward passes are fastest under concurrent load
            _, e8, _ = run_load(port, texts, 8, None, len(texts))

            # throughput, side by side: alternating blocks at concurrency 1 and 8
            t1 = t8 = 0.0
            n1 = n8 = 0
            c1_load: list[float] = []
            c8: list[float] = []
            block = max(len(texts) // 4, 8)
            for _ in range(4):
                lat, err, took = run_load(port, texts, 1, None, block)
                n1, e1, t1 = n1 + len(lat), e1 + err, t1 + took
                c1_load += lat
                lat, err, took = run_load(port, texts, 8, None, block * 2)
                n8, e8, t8 = n8 + len(lat), e8 + err, t8 + took
                c8 += lat
            with urllib.request.urlopen(f"{url}/endpoints/bench/stats", timeout=10) as response:
                variant = json.loads(response.read())["live"]["variants"]["AllTraffic"]
            forward_passes = variant.get("forward_passes", {})

            samples = [rss_mb(pid)]
            long_lat, e_long, t_long = run_load(
                port, texts, 8, args.duration, None, on_tick=lambda: samples.append(rss_mb(pid))
            )
            samples.append(rss_mb(pid))
        finally:
            subprocess.run(["kill", str(pid)], check=False)

    direct_p50 = statistics.median(direct)
    c1_p50 = statistics.median(c1)
    c1_rps, c8_rps = n1 / t1, n8 / t8
    ceiling = 8 / statistics.median(batched)
    result = {
        "quantization": args.quantization,
        "runtime": args.runtime,
        "requests_per_phase": len(texts),
        "direct_p50_ms": round(direct_p50 * 1000, 2),
        "direct_p99_ms": round(percentile(direct, 0.99) * 1000, 2),
        "c1_p50_ms": round(c1_p50 * 1000, 2),
        "c1_p99_ms": round(percentile(c1, 0.99) * 1000, 2),
        "c1_load_p50_ms": round(statistics.median(c1_load) * 1000, 2),
        "c1_load_p99_ms": round(percentile(c1_load, 0.99) * 1000, 2),
        "c8_p50_ms": round(statistics.median(c8) * 1000, 2),
        "c8_p99_ms": round(percentile(c8, 0.99) * 1000, 2),
        "c1_throughput_rps": round(c1_rps, 1),
        "c8_throughput_rps": round(c8_rps, 1),
        "conc8_over_conc1_throughput_ratio": round(c8_rps / c1_rps, 3),
        "batch8_ceiling_rps": round(ceiling, 1),
        "c8_over_batch8_ceiling_ratio": round(c8_rps / ceiling, 3),
        "direct_throughput_rps": round(len(direct) / sum(direct), 1),
        "p50_overhead_ratio": round(c1_p50 / direct_p50, 3),
        "p99_overhead_ratio": round(percentile(c1, 0.99) / percentile(direct, 0.99), 3),
        "forward_passes": forward_passes,
        "errors": e1 + e8 + e_long,
        "memory_run_seconds": round(t_long, 1),
        "memory_run_requests": len(long_lat),
        "server_rss_mb": [round(s, 1) for s in samples],
        "memory_growth_ratio": round(samples[-1] / samples[0], 3),
    }
    result["goals_met"] = {
        "p50_overhead_ratio<=1.15": result["p50_overhead_ratio"] <= 1.15,
        "conc8_over_conc1_throughput_ratio>=1.0": result["conc8_over_conc1_throughput_ratio"]
        >= 1.0,
        "errors==0": result["errors"] == 0,
        "memory_growth_ratio<=1.1": result["memory_growth_ratio"] <= 1.1,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
