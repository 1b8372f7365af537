"""Fine-tune a transformer into a 3-class review sentiment classifier (SageMaker script mode).

Runs unchanged in the SageMaker PyTorch container and under the local job runner: data and
output folders come from the ``SM_*`` environment, hyperparameters arrive as ``--key value``.
Progress and metrics are printed as ``key=value`` lines; the training request's
``MetricDefinitions`` (include/pipeline/requests/training.py) parse exactly these lines:

    epoch=1 step=10/169 train_loss=0.912345 samples_per_sec=51.2
    epoch=1 step=169/169 val_loss=0.701234 val_acc=0.712000

``val_loss`` is the loss on the validation channel (model in eval mode, no gradients), never
the training loss. A checkpoint is written to the checkpoint folder after every epoch so a
restarted (e.g. spot-interrupted) job resumes where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

if __package__:  # imported as include.jobs.train (tests, benchmarks)
    from . import data, documents, inference, profiler
else:  # run as a script (container, job runner): sibling modules sit on sys.path[0]
    import data
    import documents
    import inference
    import profiler

SCRIPT_DIR = Path(__file__).resolve().parent
# transformers.get_scheduler names (SchedulerType) that train.py offers.
SCHEDULES = ("linear", "cosine")
# Config fields that hold a dropout rate (BERT and RoBERTa; DistilBERT), set by --dropout.
DROPOUT_FIELDS = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "classifier_dropout",
    "dropout",
    "attention_dropout",
    "seq_classif_dropout",
)
CHECKPOINT_FILE = "checkpoint.pt"
# Copied into model.tar.gz as code/ so the serving container finds the handler.
SERVING_FILES = ("inference.py", "requirements.txt")


def _bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "y"):
        return True
    if value in ("false", "0", "no", "n", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _default_checkpoint_dir() -> str:
    # SageMaker mounts CheckpointConfig.LocalPath (default /opt/ml/checkpoints) only when the
    # request has a CheckpointConfig; the local runner points SM_CHECKPOINT_DIR at its folder.
    if os.environ.get("SM_CHECKPOINT_DIR"):
        return os.environ["SM_CHECKPOINT_DIR"]
    return "/opt/ml/checkpoints" if Path("/opt/ml/checkpoints").is_dir() else ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--pretrained_model", default="roberta-base")
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--learning_rate", type=float, default=5e-5)
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument(
        "--layerwise_lr_decay",
        type=float,
        default=1.0,
        help="each encoder layer below the top gets this times the rate above it; 1: off",
    )
    p.add_argument(
        "--head_learning_rate",
        type=float,
        default=0.0,
        help="classifier (and pooler) rate; 0: --learning_rate",
    )
    p.add_argument("--warmup_ratio", type=float, default=0.1)
    p.add_argument("--lr_schedule", default="linear", choices=SCHEDULES, help="decay after warm-up")
    p.add_argument(
        "--label_smoothing", type=float, default=0.0, help="CrossEntropyLoss label_smoothing"
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=-1.0,
        help="hidden, attention and classifier dropout; -1: the checkpoint's own",
    )
    p.add_argument(
        "--reinit_layers",
        type=int,
        default=0,
        help="re-initialise the pooler and this many top encoder layers before fine-tuning",
    )
    p.add_argument("--train_batch_size", type=int, default=32)
    p.add_argument("--validation_batch_size", type=int, default=64)
    p.add_argument("--train_steps_per_epoch", type=int, default=0, help="0: the whole split")
    p.add_argument("--validation_steps_per_epoch", type=int, default=0, help="0: the whole split")
    p.add_argument("--freeze_bert_layer", type=_bool, default=False)
    p.add_argument("--group_by_length", type=_bool, default=True, help="batch similar lengths")
    p.add_argument(
        "--serving_quantization",
        default="none",
        choices=inference.QUANTIZATIONS,
        help="how the endpoint and the evaluation run the model (inference_config.json)",
    )
    p.add_argument(
        "--serving_runtime",
        default="torch",
        choices=inference.RUNTIMES,
        help="onnxruntime: export model.onnx too and serve it with ONNX Runtime on CPU",
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--log_interval", type=int, default=10, help="steps per train_loss line")
    p.add_argument("--eval_interval", type=int, default=0, help="steps; 0: once per epoch")
    p.add_argument(
        "--profiler_interval_ms",
        type=int,
        default=profiler.INTERVAL_MS,
        help="system metrics sampling interval (Debugger's profiler); 0: off",
    )
    p.add_argument("--profile_start_step", type=int, default=profiler.PROFILE_START_STEP)
    p.add_argument(
        "--profile_num_steps",
        type=int,
        default=profiler.PROFILE_NUM_STEPS,
        help="steps torch.profiler records from --profile_start_step; 0: none",
    )
    p.add_argument("--train", default=env("SM_CHANNEL_TRAIN", ""))
    p.add_argument("--validation", default=env("SM_CHANNEL_VALIDATION", ""))
    p.add_argument("--model_dir", default=env("SM_MODEL_DIR", ""))
    p.add_argument("--output_data_dir", default=env("SM_OUTPUT_DATA_DIR", ""))
    p.add_argument("--checkpoint_dir", default=_default_checkpoint_dir())
    # The container may add hyperparameters of its own; they are not ours to reject.
    args, unknown = p.parse_known_args(argv)
    if unknown:
        log(f"ignoring unknown arguments: {' '.join(unknown)}")
    for name in ("train", "validation", "model_dir"):
        if not getattr(args, name):
            p.error(
                f"--{name} is required (or set SM_{'CHANNEL_' * (name != 'model_dir')}"
                f"{name.upper()})"
            )
    for name in ("epochs", "train_batch_size", "validation_batch_size", "log_interval"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not args.learning_rate > 0:
        p.error(f"--learning_rate must be > 0, got {args.learning_rate}")
    if not 0 < args.layerwise_lr_decay <= 1:
        p.error(f"--layerwise_lr_decay must be in (0, 1], got {args.layerwise_lr_decay}")
    if args.head_learning_rate < 0:
        p.error(f"--head_learning_rate must be >= 0, got {args.head_learning_rate}")
    if not 0 <= args.label_smoothing < 1:
        p.error(f"--label_smoothing must be in [0, 1), got {args.label_smoothing}")
    if not (args.dropout == -1 or 0 <= args.dropout < 1):
        p.error(f"--dropout must be -1 (the checkpoint's) or in [0, 1), got {args.dropout}")
    if args.reinit_layers < 0:
        p.error(f"--reinit_layers must be >= 0, got {args.reinit_layers}")
    return args


def log(message: str) -> None:
    """One line to stdout, flushed: the task log shows progress while the job runs."""
    print(message, flush=True)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_channel(folder: str, name: str, max_seq_length: int, pad_token_id: int = 0) -> data.Split:
    split = data.load_split(folder, pad_token_id=pad_token_id)
    if split.seq_length > max_seq_length:
        raise ValueError(
            f"channel {name!r} ({folder}): rows are padded to {split.seq_length} tokens but"
            f" max_seq_length is {max_seq_length}; prepare and train must use the same length"
        )
    log(f"channel {name}: {len(split)} rows, sequence length {split.seq_length}")
    return split


def tensors(split: data.Split) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.from_numpy(split.input_ids),
        torch.from_numpy(split.attention_mask),
        torch.from_numpy(split.label_ids),
    )


def batches(
    split: data.Split,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    limit: int = 0,
    group_by_length: bool = False,
):
    """``(input_ids, attention_mask, labels)`` batches; shuffled by a seed so a resumed epoch
    sees the same order as an uninterrupted one.

    Trailing columns that are padding in every row of a batch are cut off: attention ignores
    them, so short batches cost less than ``max_seq_length`` ones. ``group_by_length`` (with a
    shuffle) sorts rows by length within windows of 50 batches and then shuffles the batches,
    so rows in a batch have similar lengths and little padding is computed; without a shuffle
    (validation) it sorts the whole split by length.
    """
    ids, mask, labels = tensors(split)
    order = torch.arange(len(labels))
    if shuffle_seed is None and group_by_length:  # evaluation: the same rows, longest first
        kept = order[: limit * batch_size] if limit else order
        order = kept[torch.argsort(mask[kept].sum(dim=1), descending=True, stable=True)]
    if shuffle_seed is not None:
        g = torch.Generator().manual_seed(shuffle_seed)
        order = torch.randperm(len(labels), generator=g)
        if group_by_length:
            lengths = mask.sum(dim=1)
            window = batch_size * 50
            chunks = [order[i : i + window] for i in range(0, len(order), window)]
            order = torch.cat([c[torch.argsort(lengths[c], descending=True)] for c in chunks])
            groups = list(torch.split(order, batch_size))
            groups = [groups[i] for i in torch.randperm(len(groups), generator=g).tolist()]
            order = torch.cat(groups)
    out = []
    for start in range(0, len(labels), batch_size):
        index = order[start : start + batch_size]
        batch_mask = mask[index]
        width = data.used_width(batch_mask)
        out.append((ids[index][:, :width], batch_mask[:, :width], labels[index]))
        if limit and len(out) >= limit:
            break
    return out


def build_model(
    pretrained: str, freeze_base: bool, *, dropout: float = -1.0, reinit_layers: int = 0
):
    """The checkpoint with a new classifier head for the labels.

    ``dropout`` (>= 0) replaces the checkpoint's dropout rates where its config has them (BERT,
    RoBERTa and DistilBERT names); ``reinit_layers`` re-initialises the pooler and that many top
    encoder layers, which for few-sample fine-tuning often beats keeping the pre-training's
    most task-specific layers (Zhang et al., 2021, "Revisiting Few-sample BERT Fine-tuning").
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    labels = data.id2label()
    config = AutoConfig.from_pretrained(
        pretrained,
        num_labels=len(data.LABELS),
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    if dropout >= 0:
        for field in DROPOUT_FIELDS:
            if hasattr(config, field):
                setattr(config, field, dropout)
    model = AutoModelForSequenceClassification.from_pretrained(pretrained, config=config)
    if reinit_layers:
        log(f"re-initialised {', '.join(reinitialise_top(model, reinit_layers))}")
    if freeze_base:
        for param in model.base_model.parameters():
            param.requires_grad = False
    return model


def reinitialise_top(model, count: int) -> list[str]:
    """Re-initialise the pooler and the top ``count`` encoder layers with the model's own
    ``_init_weights``; returns the re-initialised modules' names."""
    modules = dict(model.named_modules())
    layers = sorted(  # "bert.encoder.layer.1.output.dense.weight" -> 1: "bert.encoder.layer.1"
        {
            int(m.group(1)): name[: m.end() - 1]
            for name, _ in model.named_parameters()
            if (m := _LAYER.search(name))
        }.items()
    )
    if count > len(layers):
        raise ValueError(
            f"--reinit_layers {count}: the model has only {len(layers)} encoder layers"
        )
    names = [name for _, name in layers[-count:]] + [n for n in modules if n.endswith("pooler")]
    for name in names:
        # transformers skips tensors it marked as loaded from the checkpoint: unmark them.
        for tensor in (*modules[name].parameters(), *modules[name].buffers()):
            tensor._is_hf_initialized = False
        modules[name].apply(model._init_weights)
    return names


_LAYER = re.compile(r"\.layers?\.(\d+)\.")
_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "layernorm.weight")


def parameter_groups(model, args: argparse.Namespace) -> list[dict]:
    """AdamW groups with layer-wise learning-rate decay (what works for small-BERT fine-tuning
    on few samples): the head at ``head_learning_rate``, the top encoder layer at
    ``learning_rate``, each layer below ``layerwise_lr_decay`` times the one above, embeddings
    last; biases and LayerNorm weights without weight decay. Frozen parameters are left out.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    base = getattr(model, "base_model_prefix", "")
    layers = [int(m.group(1)) for n, _ in named if (m := _LAYER.search(n))]
    top = max(layers, default=-1)
    head_lr = args.head_learning_rate or args.learning_rate
    groups: dict[tuple[float, float], list] = {}
    for name, param in named:
        found = _LAYER.search(name)
        if found:
            lr = args.learning_rate * args.layerwise_lr_decay ** (top - int(found.group(1)))
        elif "embeddings" in name and name.startswith(base):
            lr = args.learning_rate * args.layerwise_lr_decay ** (top + 1)
        else:  # classifier, pooler: new or task-specific weights
            lr = head_lr
        decay = 0.0 if name.endswith(_NO_DECAY) else args.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


@dataclass(frozen=True)
class Fit:
    """What every training step works on, passed as one (and checkpointed as one)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: torch.nn.Module
    dev: torch.device

    def state(self) -> dict:
        """The checkpoint's part of the fit; the RNG too, so a resumed run draws alike."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])


def train_steps(fit: Fit, batch_list, *, on_step=None, profiler=None) -> None:
    """The training loop proper: forward, loss, backward, optimizer and schedule step.

    ``on_step(step, batch_size, loss)`` sees every step (logging, evaluation); kept out of the
    hot path otherwise so the loop costs what a bare PyTorch loop costs. ``profiler``
    (:class:`profiler.Profiler`) times each step and its wait for the batch: two clock reads.
    """
    fit.model.train()
    batches = iter(batch_list)
    step = 0
    while True:
        if profiler is not None:
            profiler.step_begin()
        batch = next(batches, None)
        if batch is None:
            break
        step += 1
        ids, mask, labels = (t.to(fit.dev) for t in batch)
        if profiler is not None:
            profiler.batch_ready()
        logits = fit.model(input_ids=ids, attention_mask=mask).logits
        loss = fit.loss_fn(logits, labels)
        loss.backward()
        fit.optimizer.step()
        fit.scheduler.step()
        fit.optimizer.zero_grad(set_to_none=True)
        if profiler is not None:
            profiler.step_end()
        if on_step is not None:
            on_step(step, len(labels), loss.detach())


@torch.no_grad()
def evaluate(model, batch_list, loss_fn, dev) -> tuple[float, float]:
    """Mean loss and accuracy of the model on held-out batches (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for ids, mask, labels in batch_list:
        ids, mask, labels = ids.to(dev), mask.to(dev), labels.to(dev)
        logits = model(input_ids=ids, attention_mask=mask).logits
        total_loss += float(loss_fn(logits, labels)) * len(labels)
        correct += int((logits.argmax(dim=-1) == labels).sum())
        count += len(labels)
    model.train(was_training)
    return total_loss / count, correct / count


def fingerprint(args: argparse.Namespace, train: data.Split) -> str:
    """What a checkpoint must match to be resumed: same model, data and schedule."""
    keys = (
        "pretrained_model",
        "max_seq_length",
        "epochs",
        "learning_rate",
        "weight_decay",
        "layerwise_lr_decay",
        "head_learning_rate",
        "warmup_ratio",
        "lr_schedule",
        "label_smoothing",
        "dropout",
        "reinit_layers",
        "train_batch_size",
        "train_steps_per_epoch",
        "freeze_bert_layer",
        "group_by_length",
        "seed",
    )
    digest = hashlib.sha256(json.dumps({k: getattr(args, k) for k in keys}).encode())
    digest.update(train.input_ids.tobytes())
    digest.update(train.label_ids.tobytes())
    return digest.hexdigest()


def save_checkpoint(folder: Path, state: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{CHECKPOINT_FILE}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, folder / CHECKPOINT_FILE)


def load_checkpoint(folder: Path, expected: str) -> dict | None:
    path = folder / CHECKPOINT_FILE
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != expected:
        log(f"checkpoint {path} belongs to other hyperparameters or data; starting fresh")
        return None
    return state


def debugger_hook(model, loss_fn):
    """SageMaker Debugger's hook when the container has smdebug and a hook config, else None."""
    if not Path("/opt/ml/input/config/debughookconfig.json").exists():
        return None
    try:
        import smdebug.pytorch as smd

        hook = smd.Hook.create_from_json_file()
        hook.register_module(model)
        hook.register_loss(loss_fn)
        return hook
    except Exception as err:  # noqa: BLE001 - the hook is optional, training is not
        log(f"SageMaker Debugger hook not available ({err}); metrics still come from the log")
        return None


def _set_mode(hook, mode: str) -> None:
    if hook is not None:
        import smdebug.pytorch as smd

        hook.set_mode(getattr(smd.modes, mode))


def save_model(model, tokenizer, model_dir: Path, args: argparse.Namespace) -> None:
    """``save_pretrained`` folder (safetensors weights) + tokenizer + ``inference_config.json``
    (how it is served) + ``model.onnx`` for the ONNX Runtime + ``code/`` for serving. No
    ``model.pth`` copy of the same weights: it doubled every archive each job unpacks
    (inference.py still reads one another tool wrote)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    serving = {
        "max_seq_length": args.max_seq_length,
        "quantization": args.serving_quantization,
        "runtime": args.serving_runtime,
    }
    if args.serving_runtime == "onnxruntime":
        started = time.perf_counter()
        inference.export(model, tokenizer, model_dir)
        log(f"exported {inference.ONNX_FILE} in {time.perf_counter() - started:.1f} s")
    (model_dir / inference.CONFIG_FILE).write_text(json.dumps(serving))
    code = model_dir / "code"
    for name in SERVING_FILES:
        if (SCRIPT_DIR / name).is_file():
            code.mkdir(exist_ok=True)
            shutil.copyfile(SCRIPT_DIR / name, code / name)
    log(f"saved model to {model_dir}: {sorted(p.name for p in model_dir.iterdir())}")


def main(argv: list[str] | None = None) -> dict:
    """Train, validate, save; returns the metric history that was also printed."""
    args = parse_args(argv)
    log(f"hyperparameters: {json.dumps(vars(args), sort_keys=True)}")
    from transformers import AutoTokenizer, get_scheduler

    set_seed(args.seed)
    dev = device()
    tokenizer = AutoTokenizer.from_pretrained(args.pretrained_model)
    pad = tokenizer.pad_token_id or 0
    train = load_channel(args.train, "train", args.max_seq_length, pad)
    validation = load_channel(args.validation, "validation", args.max_seq_length, pad)
    val_batches = batches(
        validation,
        args.validation_batch_size,
        limit=args.validation_steps_per_epoch,
        group_by_length=args.group_by_length,
    )
    steps_per_epoch = math.ceil(len(train) / args.train_batch_size)
    if args.train_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, args.train_steps_per_epoch)
    total_steps = steps_per_epoch * args.epochs

    model = build_model(
        args.pretrained_model,
        args.freeze_bert_layer,
        dropout=args.dropout,
        reinit_layers=args.reinit_layers,
    ).to(dev)
    # Training and validation loss alike, so the Overtraining rule compares like with like.
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    optimizer = torch.optim.AdamW(parameter_groups(model, args), lr=args.learning_rate)
    scheduler = get_scheduler(
        args.lr_schedule,
        optimizer,
        num_warmup_steps=int(args.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    fit = Fit(model, optimizer, scheduler, loss_fn, dev)
    history: dict[str, list] = {
        "train_loss": [],
        "val_loss": [],
        "val_acc": [],
        "train_loss_step": [],
    }
    start_epoch = 0
    checkpoint_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else None
    key = fingerprint(args, train)
    if checkpoint_dir is not None:
        state = load_checkpoint(checkpoint_dir, key)
        if state is not None:
            fit.restore(state)
            history = state["history"]
            start_epoch = state["epoch"]
            log(f"resumed from {checkpoint_dir / CHECKPOINT_FILE} after epoch {start_epoch}")
    else:
        log("no checkpoint folder (SM_CHECKPOINT_DIR or /opt/ml/checkpoints); not checkpointing")

    hook = debugger_hook(model, loss_fn)
    log(
        f"training on {dev}: {len(train)} rows, {args.epochs} epoch(s) x {steps_per_epoch} steps"
        f" of {args.train_batch_size}, {len(validation)} validation rows"
    )
    loop = {"seconds": 0.0, "samples": 0}
    profile = profiler.Profiler(
        Path(args.output_data_dir) if args.output_data_dir else None,
        str(dev),
        interval_ms=args.profiler_interval_ms,
        start_step=args.profile_start_step,
        num_steps=args.profile_num_steps,
    )
    try:
        for epoch in range(start_epoch + 1, args.epochs + 1):
            epoch_started = time.perf_counter()
            epoch_batches = batches(
                train,
                args.train_batch_size,
                shuffle_seed=args.seed + epoch,
                limit=steps_per_epoch,
                group_by_length=args.group_by_length,
            )
            train_one_epoch(
                fit,
                epoch_batches,
                args,
                epoch=epoch,
                val_batches=val_batches,
                history=history,
                hook=hook,
                profile=profile,
            )
            loop["seconds"] += time.perf_counter() - epoch_started
            loop["samples"] += sum(len(batch[2]) for batch in epoch_batches)
            if checkpoint_dir is not None:
                save_checkpoint(
                    checkpoint_dir,
                    {"fingerprint": key, "epoch": epoch, **fit.state(), "history": history},
                )
                log(f"checkpoint written after epoch {epoch}")
    finally:
        profile.close()  # the system monitor's thread stops, on a failure too
    # What the whole job (and the DAG around it) is compared with: see benchmarks/.
    log(
        f"training loop: {loop['seconds']:.1f} s for {loop['samples']} samples"
        f" ({loop['samples'] / max(loop['seconds'], 1e-9):.1f} samples/s, validation included)"
    )
    if len(history.get("train_loss_step", [])) != len(history["train_loss"]):
        history["train_loss_step"] = []  # resumed from a checkpoint that recorded no steps
    model.eval()
    save_model(model, tokenizer, Path(args.model_dir), args)
    # In the model folder, so model.tar.gz carries it on every target (the evaluation job
    # publishes it with its report); output/data is only a tarball on SageMaker.
    (Path(args.model_dir) / documents.TRAINING_HISTORY_FILE).write_text(
        json.dumps(documents.TrainingHistory(**history).to_dict(), indent=2)
    )
    if args.output_data_dir:
        out = Path(args.output_data_dir)
        out.mkdir(parents=True, exist_ok=True)
        timing = {"loop_seconds": round(loop["seconds"], 3), "samples_seen": loop["samples"]}
        (out / "metrics.json").write_text(json.dumps({**history, **timing}, indent=2))
        # Also in output.tar.gz, a small archive: what the pipeline's rule evaluation reads.
        (out / documents.TRAINING_HISTORY_FILE).write_text(
            json.dumps(documents.TrainingHistory(**history).to_dict(), indent=2)
        )
    return history


def train_one_epoch(
    fit: Fit,
    epoch_batches,
    args,
    *,
    epoch: int,
    val_batches,
    history: dict,
    hook=None,
    profile=None,
) -> None:
    """One epoch of :func:`train_steps` with interval logging and validation."""
    n_steps = len(epoch_batches)
    window = {"loss": 0.0, "steps": 0, "samples": 0, "start": time.perf_counter()}

    def flush_train(step: int) -> None:
        loss = window["loss"] / window["steps"]
        if not math.isfinite(loss):
            raise FloatingPointError(f"epoch {epoch} step {step}: training loss is {loss}")
        rate = window["samples"] / max(time.perf_counter() - window["start"], 1e-9)
        history["train_loss"].append(round(loss, 6))
        history.setdefault("train_loss_step", []).append((epoch - 1) * n_steps + step)
        log(f"epoch={epoch} step={step}/{n_steps} train_loss={loss:.6f} samples_per_sec={rate:.1f}")
        window.update(loss=0.0, steps=0, samples=0, start=time.perf_counter())

    def validate(step: int) -> None:
        _set_mode(hook, "EVAL")
        val_loss, val_acc = evaluate(fit.model, val_batches, fit.loss_fn, fit.dev)
        _set_mode(hook, "TRAIN")
        history["val_loss"].append(round(val_loss, 6))
        history["val_acc"].append(round(val_acc, 6))
        log(f"epoch={epoch} step={step}/{n_steps} val_loss={val_loss:.6f} val_acc={val_acc:.6f}")
        window["start"] = time.perf_counter()

    def on_step(step: int, size: int, loss: torch.Tensor) -> None:
        window["loss"] += float(loss)
        window["steps"] += 1
        window["samples"] += size
        if step % args.log_interval == 0 or step == n_steps:
            flush_train(step)
        if (args.eval_interval and step % args.eval_interval == 0) or step == n_steps:
            validate(step)

    _set_mode(hook, "TRAIN")
    train_steps(fit, epoch_batches, on_step=on_step, profiler=profile)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as err:
        # SageMaker reports /opt/ml/output/failure as the job's FailureReason.
        failure = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output")) / "failure"
        if failure.parent.is_dir():
            failure.write_text(f"{type(err).__name__}: {err}")
        raise
