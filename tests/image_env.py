"""A job's image as the test data plane runs it: only what the image ships imports.

A manifest per image (``tests/images/*.json``) names the distributions the image ships, read
from its published Dockerfiles. :func:`environment` builds, once per manifest and set of installed
distributions (cached outside the clone), a folder of symlinks to those distributions' files as
this interpreter has them, with their dependencies. :func:`image_process` then runs a job as
``python -S`` (no site-packages) with ``PYTHONPATH`` = its code, a folder of its own for what it
installs, that environment. What a job installs (``pip install -r``, which the environment's pip
answers, or the training toolkit's requirements.txt) is linked from this interpreter's
distributions into the job's own folder once the pins match what is installed here: no network,
and nothing reaches the next job. Standard library and ``packaging`` only: the environment's pip
imports this module in a fresh interpreter.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from packaging.requirements import Requirement

if TYPE_CHECKING:
    from include.pipeline.targets.local.sagemaker.jobs import Process

MANIFESTS = Path(__file__).with_name("images")
REPO = Path(__file__).resolve().parent.parent
REPORT = "twin-environment.json"  # in an environment: what it holds and what it left out
INSTALL_FOLDER_ENV = "IMAGE_TWIN_SITE"  # a job's own install folder, for the environment's pip
ENVIRONMENT_ENV = "IMAGE_TWIN_ENVIRONMENT"
PIP_MAIN = f"""import sys

sys.path.insert(0, {str(REPO)!r})
from tests.image_env import pip_main

sys.exit(pip_main(sys.argv[1:]))
"""


class InstallError(Exception):
    """A requirement the image twin cannot install (as pip fails without an index)."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "reviews-pipeline-test" / "images"


def manifest_for(image_uri: str) -> dict | None:
    """The manifest of ``image_uri`` (by repository and tag), None where there is none."""
    repository, _, tag = image_uri.rsplit("/", 1)[-1].partition(":")
    for path in sorted(MANIFESTS.glob("*.json")):
        doc = json.loads(path.read_text())
        if doc["repository"] == repository and tag in doc["tags"]:
            return doc
    return None


def _site() -> Path:
    return Path(sysconfig.get_paths()["purelib"]).resolve()


def installed() -> dict[str, metadata.Distribution]:
    """This interpreter's distributions (its site-packages only), by canonical name."""
    dists: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=[str(_site())]):
        dists.setdefault(canonical(dist.metadata["Name"]), dist)
    return dists


def closure(
    roots: dict[str, set[str]],
    dists: dict[str, metadata.Distribution],
    stop: Collection[str] = (),
) -> tuple[set[str], list[str]]:
    """The installed distributions ``roots`` (name -> extras) need, with theirs, and the
    requirements met by nothing installed here; names in ``stop`` are not entered."""
    seen: set[str] = set()
    missing: list[str] = []
    todo = list(roots.items())
    while todo:
        name, extras = todo.pop()
        if name in seen or name in stop:
            continue
        if name not in dists:
            missing.append(name)
            continue
        seen.add(name)
        for text in dists[name].requires or []:
            req = Requirement(text)
            wanted = req.marker is None or any(
                req.marker.evaluate({"extra": e}) for e in (extras or {""})
            )
            if wanted:
                todo.append((canonical(req.name), set(req.extras)))
    return seen, missing


@dataclass
class _Node:
    """A path of site-packages and the distributions with files under it."""

    owners: set[str] = field(default_factory=set)
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(dists: dict[str, metadata.Distribution]) -> _Node:
    root = _Node()
    for name, dist in dists.items():
        for file in dist.files or []:
            parts = PurePosixPath(file).parts
            if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(".pth"):
                continue  # scripts outside site-packages, caches, start-up hooks
            node = root
            for part in parts:
                node = node.children.setdefault(part, _Node())
                node.owners.add(name)
    return root


def _link(node: _Node, wanted: set[str], allowed: set[str], source: Path, target: Path) -> None:
    """Link what ``wanted`` distributions own into ``target``: a whole folder where only
    ``allowed`` ones own files in it, else its entries one by one."""
    target.mkdir(parents=True, exist_ok=True)
    for name, child in sorted(node.children.items()):
        if not child.owners & wanted or not (source / name).exists():
            continue
        if child.owners <= allowed:
            if not (target / name).exists():
                (target / name).symlink_to(source / name)
        elif child.children:
            _link(child, wanted, allowed, source / name, target / name)


def _ships(manifest: dict, dists: dict[str, metadata.Distribution]) -> tuple[set[str], dict]:
    """The installed distributions the image ships, and those it ships that are left out here
    (name -> why)."""
    roots: dict[str, set[str]] = {}
    left_out: dict[str, str] = {}
    for text in [*manifest["ships"], *manifest.get("dependencies", {})]:
        req = Requirement(text)
        name = canonical(req.name)
        dist = dists.get(name)
        if dist is None:
            left_out[name] = "not installed here"
        elif not req.specifier.contains(dist.version, prereleases=True):
            left_out[name] = f"{dist.version} here, the image has {req.specifier}"
        else:
            roots[name] = set(req.extras)
    ships, _ = closure(roots, dists, stop=set(left_out))
    crossed = ships & {canonical(n) for n in manifest.get("lacks", [])}
    if crossed:
        raise ValueError(f"the manifest's packages reach {sorted(crossed)}, which the image lacks")
    return ships, left_out


def environment(manifest: dict) -> Path:
    """The folder of the image's environment (built once, then cached by its inputs)."""
    dists = installed()
    key = hashlib.sha256(
        json.dumps(
            [
                manifest,
                sys.executable,
                sorted(f"{n}=={d.version}" for n, d in dists.items()),
                Path(__file__).read_text(),
            ]
        ).encode()
    ).hexdigest()[:16]
    folder = cache_root() / f"{manifest['repository']}-{key}"
    if (folder / REPORT).is_file():
        return folder
    ships, left_out = _ships(manifest, dists)
    folder.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        linked = ships - {"pip"}  # the environment's pip is the twin's (PIP_MAIN)
        _link(_tree(dists), linked, linked, _site(), build)
        (build / "pip").mkdir()
        (build / "pip" / "__init__.py").write_text('"""The image twin\'s pip."""\n')
        (build / "pip" / "__main__.py").write_text(PIP_MAIN)
        report = {"ships": sorted(ships), "left_out": left_out, "python": sys.version}
        (build / REPORT).write_text(json.dumps(report, indent=1, sort_keys=True))
        os.rename(build, folder)
    except OSError:
        if not (folder / REPORT).is_file():  # not another process's build
            raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return folder


def read_requirements(path: Path) -> list[str]:
    """The requirements of a requirements file (and of the files it names with ``-r``)."""
    out = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if line.startswith(("-r ", "--requirement ")):
            out += read_requirements(path.parent / line.split(maxsplit=1)[1])
        elif line and not line.startswith(("#", "-")):
            out.append(line)
    return out


def install(requirements: list[str], target: Path, env_folder: Path) -> list[str]:
    """Link ``requirements`` (and what they need that the image does not ship) into
    ``target``; returns ``name-version`` of each. InstallError where this interpreter lacks
    one or has another version than the pin."""
    dists = installed()
    ships = set(json.loads((env_folder / REPORT).read_text())["ships"])
    roots: dict[str, set[str]] = {}
    for text in requirements:
        req = Requirement(text)
        name = canonical(req.name)
        if name not in dists:
            raise InstallError(f"No matching distribution found for {text} (not installed here)")
        if not req.specifier.contains(dists[name].version, prereleases=True):
            raise InstallError(
                f"No matching distribution found for {text} ({dists[name].version} here)"
            )
        roots[name] = set(req.extras)
    needed, missing = closure(roots, dists)
    if missing:
        raise InstallError(f"No matching distribution found for {sorted(set(missing))}")
    wanted = needed - ships
    _link(_tree(dists), wanted, wanted | ships, _site(), target)
    return sorted(f"{dists[n].metadata['Name']}-{dists[n].version}" for n in wanted)


def pip_main(argv: list[str]) -> int:
    """``python -m pip install ...`` in an image environment: :func:`install` into the job's
    own folder."""
    if not argv or argv[0] != "install":
        print(f"ERROR: the image twin's pip runs `install` only, not {argv}", file=sys.stderr)
        return 1
    requirements: list[str] = []
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-r", "--requirement"):
            requirements += read_requirements(Path(next(args)))
        elif arg in ("-i", "--index-url", "--extra-index-url", "-c", "--constraint"):
            next(args)
        elif not arg.startswith("-"):
            requirements.append(arg)
    try:
        done = install(
            requirements,
            Path(os.environ[INSTALL_FOLDER_ENV]),
            Path(os.environ[ENVIRONMENT_ENV]),
        )
    except InstallError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print("Successfully installed " + " ".join(done), flush=True)
    return 0


def image_process(process: Process, log: Callable[[str], None] = print) -> Process:
    """A job's process (``jobs.Process``) run in its image's environment: a PyTorch-image job
    script as ``python -S`` on that environment, a fresh interpreter (never the warm fork
    server, which has imported what the image may lack). Training first installs the source
    dir's requirements.txt, as the SageMaker training toolkit does. Other images' jobs (the
    local Clarify and BlazingText stand-ins) run as before."""
    from include.pipeline.targets.local.sagemaker import jobs, warm

    if process.kind not in ("processing", "training") or process.argv[0] != sys.executable:
        return process  # a process of no job request (the local AutoML engine's)
    if jobs.runtime_for(process.image) != "python":
        return process
    manifest = manifest_for(process.image)
    if manifest is None:
        raise ValueError(f"no manifest in {MANIFESTS} for the image {process.image}")
    env_folder = environment(manifest)
    site = process.folder / "image-site"
    site.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-S", *process.argv[1:]]
    requirements = Path(process.cwd) / "requirements.txt"
    if process.kind == "training" and requirements.is_file():
        try:
            done = install(read_requirements(requirements), site, env_folder)
            log(f"[{process.job}] installed {requirements.name}: {' '.join(done)}")
        except InstallError as exc:  # the toolkit fails the job before the script starts
            argv = [sys.executable, "-S", "-c", "import sys; sys.exit(sys.argv[1])", str(exc)]
    inherited = set(filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    paths = [p for p in process.env.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = [p for p in paths if p not in inherited] + [str(site), str(env_folder)]
    env = {
        **process.env,
        "PYTHONPATH": os.pathsep.join(paths),
        warm.SWITCH: "0",
        INSTALL_FOLDER_ENV: str(site),
        ENVIRONMENT_ENV: str(env_folder),
    }
    return replace(process, argv=argv, env=env)
