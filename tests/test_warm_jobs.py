"""Local jobs forked from the warm interpreter keep what a fresh ``python3 script.py`` gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from include.pipeline.settings import REPO_ROOT
from include.pipeline.targets.local.sagemaker import warm

SCRIPT = """
import json, os, sys
import helper  # a sibling of the script, as the container's code folder gives
print("preloaded" if "torch" in sys.modules else "fresh")
print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0],
                  "colour": os.environ.get("COLOUR"), "name": __name__, "helper": helper.VALUE}))
print("to stderr", file=sys.stderr)
code = os.environ.get("EXIT_WITH")
if code == "raise":
    raise RuntimeError("the job's own error")
if code:
    sys.exit(int(code))
"""


@pytest.fixture(scope="module", autouse=True)
def own_fork_server():
    """The fork server as this module's first job starts it, not as an earlier test in the
    process left it (its environment then)."""
    warm.stop_server()
    yield


@pytest.fixture
def script(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "helper.py").write_text("VALUE = 42\n")
    (code / "job.py").write_text(SCRIPT)
    return code / "job.py"


def _run(script: Path, cwd: Path, **env) -> tuple[str, int, list[str]]:
    proc = warm.popen([sys.executable, str(script), "--flag", "a b"], {**os.environ, **env}, cwd)
    lines = [line.rstrip("\n") for line in proc.stdout]
    return type(proc).__name__, proc.wait(timeout=120), lines


def test_script_runs_warm_with_its_own_argv_cwd_env_and_path(script: Path, tmp_path: Path):
    kind, code, lines = _run(script, tmp_path, COLOUR="green")
    assert (kind, code) == ("WarmProcess", 0), (lines, warm.differences(dict(os.environ)))
    assert lines[0] == "preloaded"
    seen = json.loads(lines[1])
    assert seen == {
        "argv": [str(script), "--flag", "a b"],
        "cwd": str(tmp_path),
        "path0": str(script.parent),
        "colour": "green",
        "name": "__main__",
        "helper": 42,
    }
    assert "to stderr" in lines
    assert os.environ.get("COLOUR") is None  # the caller's environment is untouched


def test_a_module_runs_warm_as_python_m_runs_it(tmp_path: Path):
    (tmp_path / "jobmod.py").write_text(
        "import json, sys\n"
        "print('preloaded' if 'torch' in sys.modules else 'fresh')\n"
        "print(json.dumps({'argv': sys.argv, 'path0': sys.path[0], 'name': __name__}))\n"
        "sys.exit(4)\n"
    )
    command = [sys.executable, "-m", "jobmod", "--x", "1"]
    proc = warm.popen(command, dict(os.environ), tmp_path)
    lines = [line.rstrip("\n") for line in proc.stdout]
    assert (type(proc).__name__, proc.wait(timeout=120)) == ("WarmProcess", 4), lines
    assert lines[0] == "preloaded"
    assert json.loads(lines[1]) == {
        "argv": [str(tmp_path / "jobmod.py"), "--x", "1"],
        "path0": str(tmp_path),
        "name": "__main__",
    }


def test_exit_codes_are_the_scripts(script: Path, tmp_path: Path):
    assert _run(script, tmp_path, EXIT_WITH="3")[1] == 3
    kind, code, lines = _run(script, tmp_path, EXIT_WITH="raise")
    assert (kind, code) == ("WarmProcess", 1)
    assert "RuntimeError: the job's own error" in lines


def test_a_job_can_be_killed_and_a_wait_can_time_out(tmp_path: Path):
    (tmp_path / "sleep.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    proc = warm.popen([sys.executable, str(tmp_path / "sleep.py")], dict(os.environ), tmp_path)
    assert proc.stdout.readline().strip() == "up"
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.2)
    proc.kill()
    assert proc.wait(timeout=30) == -9


def test_fresh_interpreter_where_imports_would_see_other_settings(script: Path, tmp_path: Path):
    for name in ("OMP_NUM_THREADS", "MPLBACKEND"):  # torch's threads, pyplot's backend
        other = os.environ.get(name, "") + "7"
        kind, code, lines = _run(script, tmp_path, **{name: other})
        assert (kind, code, lines[0]) == ("Popen", 0, "fresh"), name
        assert list(warm.differences({**os.environ, name: other})) == [name]
    assert _run(script, tmp_path, PIPELINE_WARM_JOBS="0")[0] == "Popen"
    # not `<this python> script.py`: as given
    proc = warm.popen([sys.executable, "-c", "print('c')"], dict(os.environ), tmp_path)
    assert (type(proc).__name__, proc.stdout.read().strip(), proc.wait()) == ("Popen", "c", 0)


def test_callers_main_module_is_not_run_in_the_job(script: Path, tmp_path: Path):
    """multiprocessing re-imports the parent's main module in its children; a job must not run
    the caller's top-level code (an unguarded script that starts a job would start it again)."""
    caller = tmp_path / "caller.py"
    caller.write_text(
        textwrap.dedent(f"""
            import os, sys
            sys.path.insert(0, {str(REPO_ROOT)!r})
            from include.pipeline.targets.local.sagemaker import warm
            print("caller top level", flush=True)
            proc = warm.popen([sys.executable, {str(script)!r}], dict(os.environ), {str(tmp_path)!r})
            print(proc.stdout.read(), end="")
            print("exit", proc.wait())
        """)
    )
    out = subprocess.run(
        [sys.executable, str(caller)], capture_output=True, text=True, timeout=180
    ).stdout
    assert out.count("caller top level") == 1, out
    assert "preloaded" in out and "exit 0" in out, out


def test_the_fork_server_starts_at_a_processs_second_task_not_its_first():
    probe = textwrap.dedent(
        """
        from include.pipeline.targets.local.sagemaker import warm
        warm.task_started()
        print(warm._server_env is None)
        warm.task_started()
        print(warm._server_env is None)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "False"]  # one task: no server; the second starts it


def test_what_libraries_set_at_import_does_not_make_jobs_run_fresh():
    """scikit-learn and joblib set KMP_* at their import; a job started before such an import
    must not leave every later job unable to use the fork server."""
    env = {"KMP_INIT_AT_FORK": "FALSE", "KMP_DUPLICATE_LIB_OK": "True", "OMP_NUM_THREADS": "1"}
    assert warm._import_env(env) == {"OMP_NUM_THREADS": "1"}


def test_a_daemonic_process_runs_its_jobs_fresh(script: Path, tmp_path: Path, monkeypatch):
    """A task under Celery's prefork pool is forked from a daemonic pool process, and
    multiprocessing refuses children there (no fork server): the job runs all the same."""
    import multiprocessing

    monkeypatch.setitem(multiprocessing.current_process()._config, "daemon", True)
    kind, code, lines = _run(script, tmp_path)
    assert (kind, code, lines[0]) == ("Popen", 0, "fresh")
