"""Run parameters are untrusted input: where a run may read from, and which models it may name.

Whoever may trigger a DAG fills its form (or posts its conf to the REST API), and that is not
whoever deployed it. So a run reads its input only from places the deployment allows: ``s3://``
URIs in the pipeline's bucket or a bucket named in ``PIPELINE_INPUT_BUCKETS``, and local files
under a folder named in ``PIPELINE_INPUT_ROOTS`` (the lake's ``incoming/`` folder always),
resolved before use (no ``..``, no link out of a root, never ``/proc``, ``/dev`` or ``/sys``).
A pretrained model is the packaged one, a folder under ``PIPELINE_MODEL_ROOTS``, the setting
``PIPELINE_PRETRAINED_MODEL``, or on aws a Hub name the training container downloads.

The main DAG's first task calls :func:`problems` (and the ingest task :func:`resolve_input`)
before anything is read or stored: a refusal names the rule and the setting that would allow it,
never a file's content, and quotes a value only shortened (:func:`short`). Every other DAG with
a form checks its limits again in its first task too (:func:`check_form`), each refusal through
:func:`refuse`.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from include.pipeline.core.s3 import split_s3_uri
from include.pipeline.settings import HUB_MODELS, Settings, default_model, hub_models

# Never an input, whatever a root says: the kernel's and the devices' pseudo-files.
FORBIDDEN_ROOTS = (Path("/proc"), Path("/dev"), Path("/sys"))
# The longest value a refusal quotes.
QUOTE_LIMIT = 40


class RefusedInput(ValueError):
    """A run parameter names something the deployment does not allow; the message says why."""


def short(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr`` of a value a person may need to see, cut to ``limit`` characters: control
    characters escaped, a long value shortened with its length said."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def input_roots(settings: Settings) -> list[Path]:
    """The folders local inputs may come from, resolved: the lake's ``incoming/`` folder and
    each folder in ``PIPELINE_INPUT_ROOTS``."""
    from include.pipeline.layout import Layout

    bucket, key = split_s3_uri(Layout(settings).incoming())
    incoming = settings.lake / bucket / key
    return [Path(os.path.realpath(p)) for p in (incoming, *settings.input_roots)]


def _forbidden(path: Path) -> bool:
    return any(path == root or path.is_relative_to(root) for root in FORBIDDEN_ROOTS)


def _s3_input(settings: Settings, uri: str) -> str:
    try:
        bucket, key = split_s3_uri(uri)
    except ValueError as exc:
        raise RefusedInput(f"input_uri {short(uri)} is not an s3://bucket/key URI") from exc
    if bucket != settings.bucket and bucket not in settings.input_buckets:
        raise RefusedInput(
            f"input_uri: bucket {short(bucket)} is neither the pipeline's bucket "
            f"({settings.bucket}) nor one named in PIPELINE_INPUT_BUCKETS (add it there to "
            "read inputs from it)"
        )
    parts = key.split("/")  # a prefix ends with "/": only its last part may be empty
    if not key or "" in parts[:-1] or any(part in (".", "..") for part in parts):
        raise RefusedInput(
            f"input_uri {short(uri)}: the key has an empty, '.' or '..' segment; name the "
            "object by its plain key"
        )
    if bucket == settings.bucket:
        from include.pipeline import targets

        try:  # the lake folder: a link inside the bucket may lead out of it
            return targets.load(settings).storage.canonical_uri(uri)
        except ValueError as exc:
            raise RefusedInput(
                f"input_uri {short(uri)} leads out of s3://{bucket}/ (a link)"
            ) from exc
    return uri


def _local_input(settings: Settings, uri: str) -> str:
    text = uri.removeprefix("file://")
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise RefusedInput(
            f"input_uri {short(uri)} is a relative path: give the file's absolute path"
        )
    if ".." in PurePosixPath(text).parts:
        raise RefusedInput(f"input_uri {short(uri)} has a '..' segment: name the file directly")
    if _forbidden(path):
        raise RefusedInput(f"input_uri {short(uri)} is a system pseudo-file (/proc, /dev, /sys)")
    real = Path(os.path.realpath(path))
    if _forbidden(real):
        raise RefusedInput(f"input_uri {short(uri)} links to a system pseudo-file")
    roots = input_roots(settings)
    if not any(real.is_relative_to(root) for root in roots):
        where = "links out of" if real != path else "is not under"
        raise RefusedInput(
            f"input_uri {short(uri)} {where} the folders inputs may come from (the lake's "
            "incoming/ folder and PIPELINE_INPUT_ROOTS): put the file in "
            f"{roots[0]}, or add its folder to PIPELINE_INPUT_ROOTS"
        )
    return str(real)


def resolve_input(settings: Settings, uri: str | None) -> str:
    """The input to read: ``""`` for the generated sample, an ``s3://`` URI, or a local file's
    resolved path; :class:`RefusedInput` for anything the deployment does not allow."""
    if not uri:
        return ""
    if uri.startswith("s3://"):
        return _s3_input(settings, uri)
    if "://" in uri and not uri.startswith("file://"):
        raise RefusedInput(f"input_uri {short(uri)}: only s3:// URIs and local paths are inputs")
    return _local_input(settings, uri)


def _model_folder(settings: Settings, name: str) -> bool:
    """``name`` is a folder under ``PIPELINE_MODEL_ROOTS`` (links followed, no ``..``)."""
    path = Path(name).expanduser()
    if not path.is_absolute() or ".." in path.parts or _forbidden(path):
        return False
    real = Path(os.path.realpath(path))
    roots = [Path(os.path.realpath(r)) for r in settings.model_roots]
    return real.is_dir() and any(real.is_relative_to(r) for r in roots)


def allowed_models(settings: Settings) -> list[str]:
    """The model names a run may give (besides folders under ``PIPELINE_MODEL_ROOTS``)."""
    names = [default_model("local")]
    if settings.pretrained_model:
        names.append(settings.pretrained_model)
    return names + list(hub_models(settings.target))


def model_problems(settings: Settings, name: str | None) -> list[str]:
    """Why ``pretrained_model`` is refused; empty when it is allowed (or not given)."""
    if not name or name in allowed_models(settings) or _model_folder(settings, name):
        return []
    hub = "" if hub_models(settings.target) else "; on aws also " + ", ".join(HUB_MODELS)
    return [
        f"pretrained_model {short(name)} is not an allowed model: leave it empty for the "
        "default, name the packaged model or PIPELINE_PRETRAINED_MODEL, or a folder under "
        f"PIPELINE_MODEL_ROOTS{hub}"
    ]


def problems(settings: Settings, params: dict) -> list[str]:
    """Every refusal of a run's parameters: the form's limits checked again (a REST client
    may send what the form would not), the input's place and the model's name."""
    from include.pipeline.params import PARAMS, limit_problems

    found = limit_problems(params, PARAMS)
    names = {p.split(":", 1)[0] for p in found}
    found += autoscaling_problems(params, names)
    if "input_uri" not in names:
        try:
            resolve_input(settings, params.get("input_uri"))
        except RefusedInput as exc:
            found.append(str(exc))
    if "pretrained_model" not in names:
        found += model_problems(settings, params.get("pretrained_model"))
    return found


def autoscaling_problems(params: dict, refused: set[str]) -> list[str]:
    """The autoscaling bounds together: a maximum below the minimum (each checked alone by the
    form's limits first; a refused one is not looked at again)."""
    from include.pipeline.requests import autoscaling

    low, high = params.get("autoscaling_min_instances"), params.get("autoscaling_max_instances")
    if refused & {"autoscaling_min_instances", "autoscaling_max_instances"}:
        return []
    if not isinstance(low, int) or not isinstance(high, int):
        return []
    return autoscaling.capacity_problems(low, high)


def refuse(found: list[str], what: str) -> None:
    """Fail the task when anything was ``found``: every problem in one message, and no retry
    (the same parameters would be refused again). ``what`` names the run (``local run``)."""
    if found:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"not starting this {what}:\n- " + "\n- ".join(found))


def check_form(params: dict, form: dict, what: str) -> None:
    """A DAG's first task checks its form's limits again (length, pattern, choices, type): a
    REST client may send a conf the form's schema never saw. :func:`refuse` names each field
    and its limit, never the value."""
    from include.pipeline.params import limit_problems

    found = limit_problems(params, form)
    refuse(found + autoscaling_problems(params, {p.split(":", 1)[0] for p in found}), what)


def configuration_problems(settings: Settings, target, params: dict, *, scheduled: bool):
    """What the first task refuses: :func:`problems`, then the target's own checks
    (``run_problems``); an input refused here is not looked at by the target."""
    found = problems(settings, params)
    refused = any(p.startswith("input_uri") for p in found)
    uri = "" if refused else params.get("input_uri") or ""
    return found + target.run_problems(uri, scheduled=scheduled and not refused, params=params)
