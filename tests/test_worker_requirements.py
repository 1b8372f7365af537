"""``requirements-worker.txt`` installed alone runs every task's Airflow-side code (aws target).

No fresh virtual environment (minutes, network): the test walks the import graph instead. From
the DAG files, the plugin and the aws target's modules it follows every ``include`` import,
including the ones inside functions (tasks import lazily); ``include/jobs`` modules, which the
Airflow side imports for constants only, are followed at module level. Then a subprocess on the
aws target imports all of it, plus every third-party module those imports name, and each module
it loaded from site-packages must belong to a distribution of ``requirements-worker.txt`` or one
of their dependencies.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

WORKER_REQUIREMENTS = REPO / "requirements-worker.txt"
ROOTS = [
    *sorted((REPO / "dags").glob("*.py")),
    *sorted((REPO / "plugins").glob("*.py")),
    *sorted((REPO / "include" / "pipeline" / "targets" / "aws").glob("*.py")),
]
LOCAL_ONLY = "include.pipeline.targets.local"  # never imported on the aws target


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_path(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, *, lazy: bool) -> set[str]:
    """Dotted names imported by a file (``from m import a`` gives ``m`` and ``m.a``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    nodes = ast.walk(tree) if lazy else iter(tree.body)
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            names.add(source)
            names |= {f"{source}.{a.name}" for a in node.names}
    return names


def import_graph() -> tuple[set[str], set[str]]:
    """(project modules, third-party module names) reachable from the worker-side roots."""
    project: set[str] = set()
    third_party: set[str] = set()
    todo = [(_module_name(p), p) for p in ROOTS]
    while todo:
        name, path = todo.pop()
        if name in project:
            continue
        project.add(name)
        for imported in _imports(path, lazy=not name.startswith("include.jobs")):
            top = imported.split(".")[0]
            if top in ("include", "dags", "plugins"):
                target = _module_path(imported)
                if target and not imported.startswith(LOCAL_ONLY):
                    todo.append((imported, target))
            elif top not in sys.stdlib_module_names and top not in ("__future__", "tests", ""):
                third_party.add(imported)
    return project, third_party


def allowed_distributions() -> set[str]:
    """The distributions of requirements-worker.txt and everything they require (installed)."""
    lines = [line.split("#")[0].strip() for line in WORKER_REQUIREMENTS.read_text().splitlines()]
    todo = [(Requirement(line), None) for line in lines if line]
    seen: set[str] = set()
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra or ""}):
            continue
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in seen:
            continue
        seen |= {key, name}
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            dependency = Requirement(spec)
            if dependency.marker is None:
                todo.append((dependency, None))
            else:
                todo += [(dependency, e) for e in ["", *requirement.extras]]
    return {k for k in seen if "[" not in k}


PROBE = """
import importlib, importlib.abc, importlib.machinery, json, sys, sysconfig
from importlib import metadata
from pathlib import Path

allowed = set(json.loads(sys.argv[2]))
site = Path(sysconfig.get_paths()["purelib"]).resolve()
owners = {}
allowed_dirs = set()
for dist in metadata.distributions():
    name = dist.metadata["Name"].lower().replace("_", "-").replace(".", "-")
    for f in dist.files or []:
        path = Path(dist.locate_file(f)).resolve()
        owners.setdefault(str(path), set()).add(name)
        if name in allowed:
            allowed_dirs.update(str(p) for p in path.parents)
refused = {}


class Refuse(importlib.abc.MetaPathFinder):
    # A worker without the other distributions: their modules cannot be imported. A package
    # whose __init__ only another distribution ships is a namespace package there.

    def find_spec(self, name, path, target=None):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        origin = spec.origin if spec.has_location else None
        if not origin or not Path(origin).resolve().is_relative_to(site):
            return spec
        dist_owners = owners.get(str(Path(origin).resolve()), {"?"})
        if dist_owners & allowed:
            return spec
        folders = [d for d in spec.submodule_search_locations or [] if str(Path(d).resolve()) in allowed_dirs]
        if folders:
            namespace = importlib.machinery.ModuleSpec(name, None, is_package=True)
            namespace.submodule_search_locations = folders
            return namespace
        refused[name] = sorted(dist_owners)
        raise ModuleNotFoundError(f"{name} is from {sorted(dist_owners)}", name=name)


def hide_other_distributions(finder_class):
    # Their metadata too: entry points (Airflow's provider discovery) see only allowed ones.
    original = finder_class.find_distributions

    def find_distributions(*args, **kwargs):
        for dist in original(*args, **kwargs):
            name = (dist.metadata["Name"] or "").lower().replace("_", "-").replace(".", "-")
            if name in allowed:
                yield dist

    finder_class.find_distributions = find_distributions


for meta_finder in list(sys.meta_path):
    if hasattr(meta_finder, "find_distributions"):
        hide_other_distributions(meta_finder if isinstance(meta_finder, type) else type(meta_finder))
try:
    import importlib_metadata
    hide_other_distributions(importlib_metadata.MetadataPathFinder)
except ImportError:
    pass
sys.meta_path.insert(0, Refuse())
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        parent, _, attr = name.rpartition(".")
        if not (parent and exc.name == name and parent not in failed
                and hasattr(sys.modules.get(parent), attr)):
            failed[name] = repr(exc)
    except Exception as exc:
        failed[name] = repr(exc)
# The image lookups read the SDK's tables lazily.
try:
    from include.pipeline.requests import images

    images.pytorch_image_uri("us-east-1", "training", images.TRAINING_INSTANCE)
    images.clarify_image_uri("us-east-1")
    images.debugger_rule_image_uri("us-east-1")
except Exception as exc:
    failed["image lookups"] = repr(exc)
print(json.dumps({"failed": failed, "refused": refused}))
"""


def test_the_graph_reaches_the_tasks_lazy_imports():
    project, third_party = import_graph()
    assert {"include.pipeline.tasks.ingest", "include.pipeline.requests.images"} <= project
    assert not any(m.startswith(LOCAL_ONLY) for m in project)
    assert "pandas" in third_party  # imported inside the ingestion functions only
    assert any(m.startswith("sagemaker.core") for m in third_party)


def test_worker_requirements_cover_every_module_the_worker_side_loads():
    project, third_party = import_graph()
    allowed = allowed_distributions()
    env = {**os.environ, "PIPELINE_TARGET": "aws", "AWS_DEFAULT_REGION": "us-east-1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            json.dumps(sorted(project | third_party)),
            json.dumps(sorted(allowed)),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # Modules of other distributions were refused; optional imports (try / except ImportError)
    # cope with that as on a real worker; anything the pipeline needs fails here, named.
    assert not result["failed"], {"failed": result["failed"], "refused": result["refused"]}


def test_worker_requirements_are_pinned_like_requirements_txt():
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, _, version = line.split(";")[0].strip().partition("==")
            pins[canonicalize_name(name.split("[")[0])] = version.split()[0]
    for line in WORKER_REQUIREMENTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            assert pins[canonicalize_name(requirement.name)] == spec.version, line
