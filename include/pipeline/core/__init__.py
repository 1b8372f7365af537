"""The leaf of the pipeline: small helpers and contracts every layer shares, importing nothing
of the pipeline itself, so request builders, documents, the run layout and both targets can use
them without depending on each other (the import-linter contracts in pyproject.toml hold it).

- :mod:`.names` deterministic short hashes and the metric names the layers agree on,
- :mod:`.s3` ``s3://`` URIs split as S3 does,
- :mod:`.files` atomic file writes,
- :mod:`.clarify_container` the SageMaker Clarify container's paths and file names.
"""
