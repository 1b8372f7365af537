"""Local job scripts forked from a warm interpreter, so each skips the ~6 s of imports.

A job still runs in a process of its own, as ``python3 script.py args`` runs in the container:
its own argv, environment, working directory, ``sys.path[0]`` (the script's folder), stdout and
stderr, and exit code. What the processes share is what every PyTorch job repeated before its
first line of work: the interpreter start and importing torch, transformers and the BERT model
code (about 6 s on a 2-core machine, more than the evaluation job's own work). The standard
library's fork server imports them once, in a process of its own that runs nothing else, and forks
each job from it (``gunicorn --preload`` does the same for web workers).

A job runs as a fresh interpreter instead when its command is neither ``<this python> script.py``
nor ``<this python> -m module`` (the local Clarify processor),
when it sets a variable the preloaded modules read while importing (``IMPORT_ENV``) to another
value than the fork server saw, with ``PIPELINE_WARM_JOBS=0``, or in a process that
multiprocessing lets start no children (a task of a Celery prefork worker). Unlike a fresh interpreter, a
forked job does not run the script's ``atexit`` handlers (none of include/jobs registers one).
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import re
import runpy
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import cast

# What the fork server imports once: what the PyTorch jobs (prepare, train, evaluate, monitor)
# import before their first line of work, and what the prepare job (pandas, boto3) and the
# evaluation's confusion matrix (pyplot: 0.5 s of its 4.6) import on the way.
PRELOAD = (
    "numpy",
    "torch",
    "transformers",
    "transformers.models.bert.modeling_bert",
    "transformers.models.bert.tokenization_bert",
    "pandas",
    "boto3",
    "matplotlib.pyplot",
)
# Variables read while those modules import (thread counts, hub and cache settings, interpreter
# switches): a job must see them as the fork server did, or it starts fresh.
IMPORT_ENV = re.compile(
    r"^(HF_|HUGGINGFACE_|TRANSFORMERS_|TORCH|PYTORCH_|OMP_|MKL_|KMP_|OPENBLAS_|TOKENIZERS_|CUDA_"
    r"|MPL|PYTHON(?!PATH$|UNBUFFERED$))"
)
SWITCH = "PIPELINE_WARM_JOBS"

_lock = threading.Lock()
_server_env: dict[str, str] | None = None
_tasks_started = 0


# Set by scikit-learn and joblib when they are imported, in whichever process imports them first:
# not a job's choice, and otherwise a job started before such an import starts the fork server
# with an environment every later job differs from (all of them would then run fresh).
SET_BY_IMPORTS = frozenset({"KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK"})


def _import_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if IMPORT_ENV.match(k) and k not in SET_BY_IMPORTS}


def enabled(env: dict[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(SWITCH, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def daemonic() -> bool:
    """Whether this process counts as a daemonic multiprocessing child, which multiprocessing
    lets start no process: a task under Celery's prefork pool is one (forked from a pool
    process), so its jobs run fresh."""
    return bool(multiprocessing.current_process().daemon)


def entry_of(argv: list[str]) -> tuple[str, str, list[str]] | None:
    """``("script", path, arguments)`` of ``<this interpreter> script.py ...``, ``("module",
    name, arguments)`` of ``<this interpreter> -m name ...``; None for other commands."""
    if len(argv) >= 2 and argv[0] == sys.executable:
        if argv[1].endswith(".py"):
            return "script", argv[1], list(argv[2:])
        if argv[1] == "-m" and len(argv) >= 3:
            return "module", argv[2], list(argv[3:])
    return None


def task_started() -> None:
    """A local operator begins in this process. ``airflow dags test`` (``make demo``, the
    benchmarks) runs every task of a run in one process, an executor one task per process: from
    a process's second task on the fork server starts, so it imports while the catalog and query
    tasks run instead of while the first PyTorch job waits for it (4.2 s of the prepare job's
    15.4 on a 2-core machine). A lone task's process starts none for nothing."""
    global _tasks_started
    with _lock:
        _tasks_started += 1
        second = _tasks_started == 2
    if second and enabled() and not daemonic():
        start_server()


def start_server() -> None:
    """Start the fork server once per process; it imports ``PRELOAD`` in the background (a
    job forked before that is done waits for it), so a first job that runs fresh (Clarify)
    warms it up for the PyTorch jobs that follow."""
    global _server_env
    with _lock:
        if _server_env is None:
            multiprocessing.set_forkserver_preload([*PRELOAD, __name__])
            multiprocessing.forkserver.ensure_running()
            _server_env = _import_env(dict(os.environ))


def stop_server() -> None:
    """Stop this process's fork server (a later job starts a new one with the environment of
    that moment). For a process whose import settings changed for good, and for tests, which
    must not inherit the settings of whichever earlier test started the server. Jobs already
    forked keep running, but their exit codes come through the server: stop it between jobs."""
    global _server_env
    with _lock:
        if _server_env is not None:
            multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]
            _server_env = None


def differences(env: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    """The import settings where ``env`` differs from the fork server's (server's, job's): why a
    job runs fresh."""
    if _server_env is None:
        return {}
    mine = _import_env(env)
    return {
        k: (_server_env.get(k), mine.get(k))
        for k in sorted(set(mine) | set(_server_env))
        if _server_env.get(k) != mine.get(k)
    }


def _run(entry: tuple[str, str, list[str]], env: dict, cwd: str, out) -> None:
    """The job's process (forked from the fork server): the script or module as ``__main__``,
    with the ``sys.path[0]`` Python gives it (the script's folder; for ``-m`` the working
    directory)."""
    kind, target, args = entry
    fd = out.fileno()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    out.close()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            cast(io.TextIOWrapper, stream).reconfigure(
                line_buffering=True
            )  # what PYTHONUNBUFFERED gives a fresh one
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    first = str(Path(target).resolve().parent) if kind == "script" else os.getcwd()
    sys.path[:0] = [first, *paths]
    sys.argv = [target, *args]
    if kind == "script":
        runpy.run_path(target, run_name="__main__")
    else:  # sys.argv[0] becomes the module's file, as ``python -m`` gives it
        runpy.run_module(target, run_name="__main__", alter_sys=True)


class WarmProcess:
    """A job forked from the fork server; what the job runner uses of ``subprocess.Popen``
    (``stdout`` as text lines, ``wait``, ``kill``). Exit codes as Popen's: the script's
    ``sys.exit`` code, 1 for an uncaught exception, ``-signal`` when killed."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path | str):
        entry = entry_of(argv)
        if entry is None:
            raise ValueError(f"not a command of this interpreter: {argv}")
        read, write = os.pipe()
        writer = multiprocessing.connection.Connection(write, readable=False)
        self.args = argv
        self._process = multiprocessing.get_context("forkserver").Process(
            target=_run, args=(entry, dict(env), str(cwd), writer), name=Path(entry[1]).name
        )
        # A job is a script of its own: the caller's main module (multiprocessing re-imports it
        # into each child, for functions pickled from it) must not run there.
        caller_main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            self._process.start()
        except BaseException:
            os.close(read)
            raise
        finally:
            sys.modules["__main__"] = caller_main
            writer.close()
        self.stdout = open(read, encoding="utf-8", errors="replace")  # noqa: SIM115

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return self._process.exitcode

    def kill(self) -> None:
        if self._process.exitcode is None:
            self._process.kill()


def popen(argv: list[str], env: dict[str, str], cwd: Path | str):
    """The job's process: forked warm where it can be, else a fresh interpreter (text stdout
    with stderr merged, line-buffered, as before)."""
    if daemonic():
        logging.getLogger(__name__).info(
            "The job runs in a fresh interpreter: this process is a daemonic multiprocessing "
            "child (a Celery prefork worker's task), which may start no fork server"
        )
    elif enabled() and enabled(env):
        start_server()  # a process's first job starts it, whatever that job is
        if entry_of(argv) is not None:
            if _import_env(env) == _server_env:
                return WarmProcess(argv, env, cwd)
            logging.getLogger(__name__).info(
                "The job runs in a fresh interpreter: %s differ from the warm one's",
                ", ".join(differences(env)),  # names only: values may be tokens
            )
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
    )
