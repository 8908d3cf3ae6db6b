# The image every Kubeflow Pipelines step runs in: Python 3.10 (TFX 1.16), the locked dependency
# set, and this project installed as a package, because the compiled spec names its code by
# module path (modules.preprocessing.preprocessing_fn, modules.model.run_fn) instead of uploading
# files. Build it with `make image`; checkpoints/ (from `make pretrained`) travels with it.
FROM python:3.10.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_USE_LEGACY_KERAS=1

# The compiler maps checkpoints under the repository to this folder (kubeflow.compiler).
WORKDIR /opt/textclf

COPY requirements.lock ./
RUN python -m pip install --no-cache-dir uv==0.13.9 \
    && uv pip install --system --no-cache -r requirements.lock

COPY setup.py ./
COPY pipeline/ pipeline/
COPY components/ components/
COPY modules/ modules/
COPY kubeflow/ kubeflow/
COPY serving/ serving/
COPY reporting/ reporting/
COPY lite/ lite/
COPY schemas/ schemas/
COPY checkpoints/ checkpoints/
RUN uv pip install --system --no-cache --no-deps . \
    && useradd --create-home --uid 1000 textclf

USER 1000
# Kubeflow sets each step's command (TFX's container entrypoint); by hand, the CLI.
ENTRYPOINT ["textclf"]
