"""``make demo``: run the main DAG once on this machine and print its run summary.

Uses Airflow's own ``dag.test()`` (a real DAG run in the metadata database, every task executed
by the task runner), then reads the summary the run wrote to the lake.
"""

from __future__ import annotations

import argparse
import json
import sys

from include.pipeline import settings as pipeline_settings
from include.pipeline import storage
from include.pipeline.targets.local import lake
from include.pipeline.tasks.summary import render_text, summary_uri

DAG_ID = "reviews_pipeline"
DEMO_CONF = {"model_approval": "Approved", "traffic_wait_seconds": 5}


def load_dag(dag_id: str = DAG_ID):
    """The DAG object from its file in ``dags/`` (the file is named after the DAG id)."""
    import importlib.util

    path = pipeline_settings.REPO_ROOT / "dags" / f"{dag_id}.py"
    spec = importlib.util.spec_from_file_location(f"dags_{dag_id}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", default="", help="local path or s3:// URI (default: sample)")
    parser.add_argument("--conf", default="{}", help="more run parameters as JSON")
    args = parser.parse_args(argv)

    settings = pipeline_settings.load()
    # The demo deploys what it trains (a person approves versions in production runs).
    conf = {**DEMO_CONF, **json.loads(args.conf), "input_uri": args.input}
    dag_run = load_dag().test(run_conf=conf)
    uri = summary_uri(settings, dag_run.run_id)
    try:
        document = json.loads(storage.for_settings(settings).read(uri))
    except FileNotFoundError:
        print(f"The run {dag_run.run_id} ended {dag_run.state} without a summary at {uri}")
        return 1
    print("\n" + "=" * 72)
    print(render_text(document))
    local_path = f" ({lake.resolve(uri, settings.lake)})" if settings.is_local else ""
    print(f"\nSummary: {uri}{local_path}")
    deployed = document.get("deployment", {})
    if (
        settings.is_local
        and deployed.get("endpoint_name")
        and not deployed.get("deleted_after_run")
    ):
        print(
            f"\nThe endpoint {deployed['endpoint_name']} is serving at {deployed['endpoint_url']}"
            " (boto3 sagemaker-runtime with endpoint_url=...). Try:\n"
            f"  curl -s -X POST {deployed['endpoint_url']}/endpoints/{deployed['endpoint_name']}"
            "/invocations -H 'Content-Type: application/json' "
            '-d \'{"features": ["I love this dress"]}\'\n'
            "Stop the endpoint service with: make stop"
        )
    return 0 if document.get("state") == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
