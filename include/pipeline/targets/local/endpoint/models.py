"""The local SageMaker model store, and inference handlers loaded from model.tar.gz.

``CreateModel`` requests are kept as JSON under ``<lake>/_sagemaker/models/<ModelName>.json``.
:func:`load_handler` turns a stored model into something that answers requests the way the
SageMaker PyTorch serving container does: it extracts the model archive once (cache keyed by
the archive's content hash), imports the archive's ``code/inference.py`` (or the container's
``SAGEMAKER_PROGRAM``) as a fresh module, and runs ``input_fn -> predict_fn -> output_fn``.
The endpoint server and local batch transform both use it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from include.pipeline.core.files import atomic_write_bytes
from include.pipeline.requests.images import AUTOPILOT_INFERENCE_REPOSITORY, BLAZINGTEXT_REPOSITORY
from include.pipeline.targets.local import archives
from include.pipeline.targets.local.endpoint.batching import BatcherClosed, MicroBatcher, cpu_passes
from include.pipeline.targets.local.lake import resolve
from include.pipeline.targets.local.names import safe_join, validate

STATE_DIR = "_sagemaker"
_MODEL_KEYS = ("ModelArn", "CreationTime", "Request")
ACCOUNT = "000000000000"
DEFAULT_PROGRAM = "inference.py"
# Images whose serving stack the local host implements itself (a built-in algorithm, Autopilot's
# candidates: their archives hold no inference script). Repository name -> module with
# model_fn / input_fn / predict_fn / output_fn.
BUILTIN_SERVING = {
    BLAZINGTEXT_REPOSITORY: "include.pipeline.targets.local.sagemaker.blazingtext",
    AUTOPILOT_INFERENCE_REPOSITORY: "include.pipeline.targets.local.sagemaker.automl_serving",
}
# The health-check request a new fleet must answer before it gets traffic (the inference contract).
WARMUP_BODY = b'{"features": ["health check"]}'
WARMUP_CONTENT_TYPE = "application/json"

_import_lock = threading.Lock()
_module_counter = itertools.count()

# What serving the project's models imports (inference.py: torch, transformers' BERT, ONNX
# Runtime): about 6 s on 2 cores, which the first CreateEndpoint waited for. The endpoint host
# imports it in the background from its start (``make demo``'s preflight, before Airflow starts).
SERVING_PRELOAD = (
    "torch",
    "transformers",
    "transformers.models.auto.modeling_auto",
    "transformers.models.bert.modeling_bert",
    "transformers.models.bert.tokenization_bert",
    "onnxruntime",
)
# Set while no preload runs. A model load waits for it: transformers' lazy module is not safe to
# import from two threads at once ("cannot import name AutoModelForSequenceClassification").
_preloaded = threading.Event()
_preloaded.set()


# The most review texts one InvokeEndpoint may carry (predict_fn scores them in length-sorted
# passes); SageMaker caps the payload at 6 MB, this caps the work: beyond it, 413.
MAX_ITEMS_PER_REQUEST = 1000


class SageMakerValidationError(ValueError):
    """What SageMaker answers with ``ValidationException``: unknown names, conflicts, bad fields."""

    status = 400


class PayloadTooLarge(SageMakerValidationError):
    """More items in one invocation than :data:`MAX_ITEMS_PER_REQUEST`."""

    status = 413


@dataclass
class InvocationError(Exception):
    """A failed invocation: ``status`` is what the container would answer (4xx input, 5xx model)."""

    status: int
    message: str
    stage: str

    def __str__(self) -> str:
        return f"{self.stage}: {self.message}"


def arn(region: str, kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:{kind}/{name.lower()}"


def _models_dir(lake: Path) -> Path:
    return Path(lake) / STATE_DIR / "models"


def _model_path(name: str, lake: Path) -> Path:
    """The stored CreateModel of ``name``, a name SageMaker would accept."""
    validate("sagemaker", "CreateModel", "ModelName", name)
    return safe_join(_models_dir(lake), f"{name}.json")


def read_document(path: Path, keys: tuple[str, ...], what: str) -> dict:
    """A stored state document with its ``keys``; a clear error naming the file if not."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SageMakerValidationError(f"{what}: unreadable state file {path}: {err}") from err
    missing = [k for k in keys if not isinstance(doc, dict) or k not in doc]
    if missing:
        raise SageMakerValidationError(
            f"{what}: state file {path} lacks {', '.join(missing)} (edited by hand?)"
        )
    return doc


def _containers(request: dict) -> list[dict]:
    """A model's containers in serving order: its PrimaryContainer, or its inference pipeline."""
    primary = request.get("PrimaryContainer")
    return [primary] if primary else list(request.get("Containers") or [])


def _package_containers(name: str, containers: list[dict], lake: Path, region: str) -> list:
    """The containers a model created from a model package serves: the package version's
    ``InferenceSpecification`` containers (image, model data, environment; all of an inference
    pipeline), as SageMaker copies them at CreateModel. Refused as AWS does: an ``Image`` or
    ``ModelDataUrl`` next to ``ModelPackageName``, an unknown version, and a versioned package
    that is not Approved ("must be set to Approved to deploy the model")."""
    from include.pipeline.targets.local.sagemaker import registry

    if len(containers) != 1:
        raise SageMakerValidationError(
            f"model {name}: a model package is deployed as one container naming it "
            f"(its package holds every container), got {len(containers)} containers"
        )
    (container,) = containers
    given = sorted({"Image", "ModelDataUrl"} & container.keys())
    if given:
        raise SageMakerValidationError(
            f"model {name}: {' and '.join(given)} cannot be given with ModelPackageName "
            "(the package's containers are used)"
        )
    package = registry.package_arn(container["ModelPackageName"], region)
    try:
        described = registry.describe_model_package(package, lake)
    except registry.RegistryError as err:
        raise SageMakerValidationError(f"model {name}: {err}") from None
    status = described.get("ModelApprovalStatus")
    if status != "Approved":
        raise SageMakerValidationError(
            f"model {name}: model package {package} is {status}; a versioned model package "
            "must be Approved to be deployed"
        )
    resolved = (described.get("InferenceSpecification") or {}).get("Containers") or []
    if not resolved:
        raise SageMakerValidationError(f"model {name}: model package {package} has no containers")
    extra = container.get("Environment") or {}
    return [
        {**c, "Environment": {**(c.get("Environment") or {}), **extra}} if extra else dict(c)
        for c in resolved
    ]


def _is_package(containers: list[dict]) -> bool:
    return any(c.get("ModelPackageName") for c in containers)


def create_model(request: dict, lake: Path, region: str = "us-east-1") -> dict:
    """Store a CreateModel request; the same request again is a no-op, a different one an error.
    A model of a package keeps the package's containers beside it (``Serving``), resolved now
    as SageMaker does: approving or rejecting the version later does not change the model."""
    name = request.get("ModelName") or ""
    if not name:
        raise SageMakerValidationError("ModelName is required")
    containers = _containers(request)
    if not containers:
        raise SageMakerValidationError(
            f"model {name}: PrimaryContainer or Containers (an inference pipeline) is required"
        )
    serving = None
    if _is_package(containers):
        serving = _package_containers(name, containers, lake, region)
        containers = serving
    for index, container in enumerate(containers):
        if not container.get("ModelDataUrl"):
            where = (
                "PrimaryContainer" if request.get("PrimaryContainer") else f"Containers[{index}]"
            )
            raise SageMakerValidationError(
                f"model {name}: {where}.ModelDataUrl (the model.tar.gz) is required locally"
            )
    path = _model_path(name, lake)
    model_arn = arn(region, "model", name)
    if path.exists():
        existing = read_document(path, _MODEL_KEYS, f"model {name}")
        if existing["Request"] == request:
            return {"ModelArn": existing["ModelArn"]}
        raise SageMakerValidationError(f'Cannot create already existing model "{model_arn}".')
    doc = {"ModelArn": model_arn, "CreationTime": time.time(), "Request": request}
    if serving is not None:
        doc["Serving"] = serving
    atomic_write_bytes(path, json.dumps(doc, indent=2).encode())
    return {"ModelArn": model_arn}


def describe_model(name: str, lake: Path) -> dict:
    """DescribeModel's answer for a stored model."""
    path = _model_path(name, lake)
    if not path.exists():
        raise SageMakerValidationError(f'Could not find model "{name}".')
    doc = read_document(path, _MODEL_KEYS, f"model {name}")
    return {**doc["Request"], "ModelArn": doc["ModelArn"], "CreationTime": doc["CreationTime"]}


def serving_containers(name: str, lake: Path) -> list[dict]:
    """The containers a stored model serves, in order: the package's when the model was created
    from a model package, else the request's own."""
    path = _model_path(name, lake)
    if not path.exists():
        raise SageMakerValidationError(f'Could not find model "{name}".')
    doc = read_document(path, _MODEL_KEYS, f"model {name}")
    return doc.get("Serving") or _containers(doc["Request"])


def delete_model(name: str, lake: Path) -> None:
    path = _model_path(name, lake)
    if not path.exists():
        raise SageMakerValidationError(f'Could not find model "{name}".')
    path.unlink()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def extract_archive(archive: Path, lake: Path) -> Path:
    """Extract a model.tar.gz once into ``_sagemaker/model-cache/<sha256>``; returns the folder."""
    if archive.is_dir():
        return archive
    if not archive.exists():
        raise FileNotFoundError(f"model archive {archive} does not exist")
    target = Path(lake) / STATE_DIR / "model-cache" / _sha256(archive)[:24]
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        archives.extract(archive, tmp)
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.exists():
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _import_fresh(script: Path):
    """Import ``script`` as a new module; siblings it imports are found and then forgotten."""
    name = f"_sagemaker_inference_{next(_module_counter)}"
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    folder = str(script.parent)
    with _import_lock:
        before = set(sys.modules)
        sys.path.insert(0, folder)
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(folder)
            for key in set(sys.modules) - before:
                origin = getattr(sys.modules[key], "__file__", None) or ""
                if origin.startswith(folder):
                    del sys.modules[key]
    return module


def _code_script(model_dir: Path, environment: dict, lake: Path) -> Path:
    program = environment.get("SAGEMAKER_PROGRAM") or DEFAULT_PROGRAM
    submit = environment.get("SAGEMAKER_SUBMIT_DIRECTORY")
    code_dir = model_dir / "code"
    if submit and not submit.startswith("/opt/ml/"):
        code_dir = extract_archive(resolve(submit, lake), lake)
    script = code_dir / program
    if not script.exists():
        raise FileNotFoundError(f"{script}: the model archive has no inference script {program}")
    return script


class InferenceHandler:
    """One loaded model: ``predict(body, content_type, accept) -> (bytes, content_type)``.

    The three stages are also callable on their own (``parse`` / ``infer`` / ``render``) so the
    endpoint server can merge concurrent requests into one ``predict_fn`` call; each stage raises
    :class:`InvocationError` with the status the container would return.
    """

    def __init__(self, model_name: str, model_dir: Path, module, model):
        self.model_name = model_name
        self.model_dir = model_dir
        self.module = module
        self.model = model
        self._batcher: MicroBatcher | None = None
        self._passes: int | None = None  # an autoscaled variant's instances; None: the CPUs
        self._batcher_lock = threading.Lock()
        self._closed = False

    def parse(self, body: bytes, content_type: str):
        fn = getattr(self.module, "input_fn", None)
        try:
            if fn is None:
                return json.loads(body)
            return fn(body, content_type)
        except Exception as err:  # the script's own validation: a client error
            status = 415 if "unsupported" in type(err).__name__.lower() else 400
            raise InvocationError(status, str(err) or type(err).__name__, "input_fn") from err

    def infer(self, data):
        fn = getattr(self.module, "predict_fn", None)
        try:
            return fn(data, self.model) if fn else self.model(data)
        except Exception as err:
            raise InvocationError(500, f"{type(err).__name__}: {err}", "predict_fn") from err

    def render(self, prediction, accept: str) -> tuple[bytes, str]:
        fn = getattr(self.module, "output_fn", None)
        try:
            result = fn(prediction, accept) if fn else json.dumps(prediction)
        except Exception as err:
            status = 406 if "unsupported" in type(err).__name__.lower() else 500
            raise InvocationError(status, str(err) or type(err).__name__, "output_fn") from err
        if isinstance(result, tuple):
            result, accept = result
        body = result.encode() if isinstance(result, str) else bytes(result)
        return body, accept

    def predict(self, body: bytes, content_type: str, accept: str | None = None):
        """input_fn -> predict_fn -> output_fn; the answer's content type follows the request."""
        accept = content_type if not accept or accept == "*/*" else accept
        return self.render(self.infer(self.parse(body, content_type)), accept)

    def invoke(self, body: bytes, content_type: str, accept: str | None = None):
        """Like :meth:`predict`, but concurrent callers share forward passes (micro-batching)."""
        accept = content_type if not accept or accept == "*/*" else accept
        data = self.parse(body, content_type)
        if not isinstance(data, list):
            return self.render(self.infer(data), accept)
        if len(data) > MAX_ITEMS_PER_REQUEST:
            raise PayloadTooLarge(
                f"The request holds {len(data)} items; one invocation takes at most "
                f"{MAX_ITEMS_PER_REQUEST} (split it into several requests)"
            )
        with self._batcher_lock:
            if self._closed:
                raise BatcherClosed(f"model {self.model_name} was unloaded")
            if self._batcher is None:
                self._batcher = MicroBatcher(self.infer, max_passes=self._passes)
            batcher = self._batcher
        try:
            predictions = batcher.submit(data)
        except TimeoutError as err:
            raise InvocationError(504, str(err), "predict_fn") from err
        return self.render(predictions, accept)

    def set_passes(self, passes: int | None) -> None:
        """Forward passes side by side: one per instance of an autoscaled variant serving this
        model (None: as many as the CPUs allow, the default)."""
        with self._batcher_lock:
            self._passes = passes
            if self._batcher is not None:
                self._batcher.set_max_passes(passes or cpu_passes())

    @property
    def passes(self) -> int:
        """How many forward passes may run side by side now."""
        batcher = self._batcher
        return batcher.policy.max_passes if batcher is not None else self._passes or cpu_passes()

    def serving_figures(self) -> dict:
        """Reviews per second observed per shape of forward pass (batching's policy)."""
        batcher = self._batcher
        return batcher.policy.snapshot() if batcher is not None else {}

    def close(self) -> None:
        with self._batcher_lock:
            self._closed = True
            if self._batcher is not None:
                self._batcher.close()


LOADER_NICE = 10  # how much lower than the serving threads a background model load runs


def yield_to_serving() -> None:
    """Make the calling (background) thread cheap for the serving threads: a lower CPU priority
    (Linux schedules threads one by one) and one torch intra-op thread (OpenMP's thread count is
    per calling thread). Loading and warming a new fleet's model then leaves the cores to the
    requests in flight instead of doubling their latency."""
    import contextlib
    import os

    # not Linux: the priority stays, the thread limit still helps
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICE)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def preload(names: tuple[str, ...] = SERVING_PRELOAD) -> threading.Thread:
    """Import ``names`` in a background thread; :func:`load_handler` waits until it is done. One
    that is not installed is skipped."""
    import importlib
    import logging

    def work() -> None:
        try:
            for name in names:
                try:
                    importlib.import_module(name)
                except ImportError as exc:
                    logging.getLogger(__name__).info("not preloading %s: %s", name, exc)
        finally:
            _preloaded.set()

    _preloaded.clear()
    thread = threading.Thread(target=work, name="serving-preload", daemon=True)
    thread.start()
    return thread


class PipelineHandler(InferenceHandler):
    """A serial inference pipeline (CreateModel ``Containers``): each container's answer is the
    next one's request, in the content type it answered with, as SageMaker chains them; the
    caller's body goes to the first container and its Accept to the last."""

    def __init__(self, model_name: str, stages: list[InferenceHandler], accepts: list[str]):
        first = stages[0]
        super().__init__(model_name, first.model_dir, first.module, first.model)
        self.stages = stages
        self.accepts = accepts  # what each container is asked to answer to the next one

    def parse(self, body: bytes, content_type: str):
        return self.stages[0].parse(body, content_type)

    def infer(self, data):
        prediction = self.stages[0].infer(data)
        for previous, accept, stage in zip(
            self.stages[:-1], self.accepts[:-1], self.stages[1:], strict=True
        ):
            body, content_type = previous.render(prediction, accept)
            prediction = stage.infer(stage.parse(body, content_type))
        return prediction

    def render(self, prediction, accept: str) -> tuple[bytes, str]:
        return self.stages[-1].render(prediction, accept)

    def close(self) -> None:
        super().close()
        for stage in self.stages:
            stage.close()


def _load_container(model_name: str, container: dict, lake: Path) -> InferenceHandler:
    environment = container.get("Environment") or {}
    model_dir = extract_archive(resolve(container["ModelDataUrl"], lake), lake)
    repository = container.get("Image", "").rsplit("/", 1)[-1].split(":")[0]
    builtin = BUILTIN_SERVING.get(repository)
    script = Path(builtin or "") if builtin else _code_script(model_dir, environment, lake)
    try:
        module = importlib.import_module(builtin) if builtin else _import_fresh(script)
        model = module.model_fn(str(model_dir))
    except Exception as err:
        raise RuntimeError(
            f"model {model_name} ({container['ModelDataUrl']}): loading failed in "
            f"{script.name}: {type(err).__name__}: {err}"
        ) from err
    return InferenceHandler(model_name, model_dir, module, model)


def load_handler(model_name: str, lake: Path) -> InferenceHandler:
    """Load a stored model (CreateModel) into an :class:`InferenceHandler` (a
    :class:`PipelineHandler` for an inference pipeline); clear errors if not."""
    lake = Path(lake)
    _preloaded.wait()
    containers = serving_containers(model_name, lake)
    stages = [_load_container(model_name, container, lake) for container in containers]
    if len(stages) == 1:
        return stages[0]
    accepts = [
        (c.get("Environment") or {}).get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "*/*")
        for c in containers
    ]
    return PipelineHandler(model_name, stages, accepts)


class HandlerCache:
    """Loaded handlers by model name, each loaded once even under concurrent first requests."""

    def __init__(self, lake: Path):
        self.lake = Path(lake)
        self._handlers: dict[str, InferenceHandler] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, model_name: str) -> InferenceHandler:
        handler = self._handlers.get(model_name)
        if handler is not None:
            return handler
        with self._lock:
            lock = self._locks.setdefault(model_name, threading.Lock())
        with lock:
            if model_name not in self._handlers:
                self._handlers[model_name] = load_handler(model_name, self.lake)
            return self._handlers[model_name]

    def loaded(self, model_name: str) -> InferenceHandler | None:
        """The handler of ``model_name`` if it is loaded (never loads it)."""
        return self._handlers.get(model_name)

    def retain(self, model_names: set[str]) -> None:
        """Unload every handler whose model no fleet uses any more (keeps memory flat)."""
        with self._lock:
            for name in set(self._handlers) - model_names:
                self._handlers.pop(name).close()
