"""The SageMaker Clarify container's contract, stated once: where it reads its analysis config
and dataset, where it writes, and the names of what it writes (the SageMaker SDK's
``SageMakerClarifyProcessor`` uses the same). The bias request, the run layout and the local
Clarify stand-in all take them from here."""

from __future__ import annotations

CONFIG_INPUT_DIR = "/opt/ml/processing/input/config"
DATA_INPUT_DIR = "/opt/ml/processing/input/data"
OUTPUT_DIR = "/opt/ml/processing/output"
CONFIG_FILE = "analysis_config.json"
ANALYSIS_FILE = "analysis.json"
REPORT_NAME = "report"  # the report is <name>.html (plus .ipynb / .pdf on aws)
CONFIG_PATH = f"{CONFIG_INPUT_DIR}/{CONFIG_FILE}"
