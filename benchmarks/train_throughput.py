"""Training throughput of train.py's loop vs. a bare PyTorch loop, same model and batches.

Both loops start from the same weights and see the same batches (the packaged MiniLM, the local
default hyperparameters, review-like lengths); rounds alternate the order so machine load hits both alike.
train.py's side runs ``train_one_epoch`` as ``main`` does: loss accumulation, interval logging,
the schedule, the end-of-epoch validation (one small batch) and the profiler (system metrics
every 500 ms, step timing, torch.profiler on steps 5 to 14). Goal: ``throughput_ratio`` >= 0.9.

    .venv/bin/python benchmarks/train_throughput.py [--steps 12] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import get_linear_schedule_with_warmup

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.jobs import profiler, train  # noqa: E402
from include.jobs.data import Split  # noqa: E402
from include.pipeline.requests.training import hyperparameters  # noqa: E402


def review_like_split(rows: int, seq: int, seed: int = 0) -> Split:
    """Random token rows with lengths like the reviews' (about 40 to ``seq`` tokens)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 20000, (rows, seq), generator=g)
    lengths = torch.randint(40, seq + 1, (rows,), generator=g)
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    return Split(
        input_ids=(ids * mask).numpy(),
        attention_mask=mask.numpy(),
        label_ids=torch.randint(0, 3, (rows,), generator=g).numpy(),
        review_ids=[str(i) for i in range(rows)],
    )


def bare_loop(model, batch_list, lr: float) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for ids, mask, labels in batch_list:
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def train_py_loop(model, batch_list, val_batches, hp: dict, profiled: bool = True) -> dict:
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp["learning_rate"], weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, 1, len(batch_list))
    args = argparse.Namespace(log_interval=hp["log_interval"], eval_interval=0)
    history = {"train_loss": [], "val_loss": [], "val_acc": [], "train_loss_step": []}
    with (
        tempfile.TemporaryDirectory() as output,
        contextlib.redirect_stdout(io.StringIO()),
    ):
        profile = profiler.Profiler(
            Path(output),
            "cpu",
            interval_ms=profiler.INTERVAL_MS if profiled else 0,
            num_steps=profiler.PROFILE_NUM_STEPS if profiled else 0,
        )
        try:
            train.train_one_epoch(
                train.Fit(
                    model, optimizer, scheduler, torch.nn.CrossEntropyLoss(), torch.device("cpu")
                ),
                batch_list,
                args,
                epoch=1,
                val_batches=val_batches,
                history=history,
                profile=profile,
            )
        finally:
            profile.close()
    timeline = profile.timeline
    profiled = [timeline.step_seconds[s - 1] for s in timeline.profiled_steps]
    others = [t for i, t in enumerate(timeline.step_seconds, 1) if i not in timeline.profiled_steps]
    return {
        "profiled_steps": len(profiled),
        "profiled_step_s": sum(profiled) / max(len(profiled), 1),
        "other_step_s": sum(others[1:]) / max(len(others) - 1, 1),
        "system_samples": profile.monitor.samples if profile.monitor else 0,
    }


def main() -> None:
    cli = argparse.ArgumentParser()
    cli.add_argument("--steps", type=int, default=12)
    cli.add_argument("--rounds", type=int, default=2)
    cli.add_argument(
        "--profiler",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train.py's side with its profiler (system metrics, torch.profiler)",
    )
    opts = cli.parse_args()
    hp = hyperparameters("local")
    bs, seq = hp["train_batch_size"], hp["max_seq_length"]
    split = review_like_split(bs * opts.steps, seq)
    batch_list = train.batches(split, bs, shuffle_seed=1, group_by_length=hp["group_by_length"])
    val_batches = train.batches(review_like_split(8, seq, seed=2), 8)
    with contextlib.redirect_stderr(io.StringIO()):
        initial = train.build_model(  # as the job builds it; both loops train this model
            hp["pretrained_model"], False, dropout=hp["dropout"], reinit_layers=hp["reinit_layers"]
        )
    # Warm-up (allocator, kernels, lazy imports) of both loops, outside the timed rounds.
    bare_loop(copy.deepcopy(initial), batch_list[:3], hp["learning_rate"])
    train_py_loop(copy.deepcopy(initial), batch_list[:3], val_batches, hp)

    timings = {"train_py": 0.0, "bare": 0.0}
    profiles = []
    for round_ in range(opts.rounds):
        for name in ("train_py", "bare")[:: 1 if round_ % 2 else -1]:
            model = copy.deepcopy(initial)
            start = time.perf_counter()
            if name == "bare":
                bare_loop(model, batch_list, hp["learning_rate"])
            else:
                profiles.append(train_py_loop(model, batch_list, val_batches, hp, opts.profiler))
            timings[name] += time.perf_counter() - start
    samples = opts.rounds * len(split)
    result = {
        "model": Path(hp["pretrained_model"]).parent.name,
        "batch_size": bs,
        "max_seq_length": seq,
        "steps_per_round": len(batch_list),
        "rounds": opts.rounds,
        "torch_threads": torch.get_num_threads(),
        "train_py_samples_per_s": round(samples / timings["train_py"], 2),
        "bare_samples_per_s": round(samples / timings["bare"], 2),
        "profiler": opts.profiler,
        "throughput_ratio": round(timings["bare"] / timings["train_py"], 3),
        # torch.profiler's steps against the others (the first left out), in train.py's rounds
        "profiled_step_ratio": round(
            sum(p["profiled_step_s"] for p in profiles) / sum(p["other_step_s"] for p in profiles),
            3,
        ),
        "system_samples": [p["system_samples"] for p in profiles],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
