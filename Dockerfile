# Airflow image for the reviews pipeline: the official Airflow 3 image plus the pinned
# requirements. Built by docker-compose.yaml (`docker-compose build`).
FROM apache/airflow:3.3.2-python3.11

# torch: requirements.txt pins torch==2.13.0; PyPI's Linux wheel pulls in CUDA libraries (GBs).
# The PyTorch CPU index serves the same version as 2.13.0+cpu, which pip prefers when the index
# is added, so the image stays CPU-only. Build with --build-arg TORCH_INDEX_URL= to use PyPI's.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

USER airflow
COPY --chown=airflow:0 requirements.txt /requirements.txt
# Pin apache-airflow to the image's version (the official pattern) so no pin in
# requirements.txt can move Airflow itself.
RUN pip install --no-cache-dir \
        ${TORCH_INDEX_URL:+--extra-index-url "${TORCH_INDEX_URL}"} \
        "apache-airflow==${AIRFLOW_VERSION}" \
        -r /requirements.txt

# The code also lives in the image (docker-compose mounts the working tree over it for
# development). include/ is imported as the top-level package `include`.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
ENV PYTHONPATH=/opt/airflow \
    PIPELINE_LAKE=/opt/airflow/lake
