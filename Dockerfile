# An image for running flyteplugins-wandb tasks on a Flyte cluster (see examples/cluster.py):
# Python 3.11, torch, flyte, flyteplugins-pytorch, wandb and this package, as a non-root user.
#
#   docker build -t flyteplugins-wandb .                      # CPU torch (small)
#   docker build -t flyteplugins-wandb-cu128 \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .   # CUDA torch for GPU nodes
#
# The build context is the repository root.
FROM python:3.11.14-slim-bookworm

# Which torch build to install: the CPU wheels by default, a CUDA index for GPUs.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first and from its own index: a plain `pip install torch` would pull a several-GB CUDA build.
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# The versions this package is tested with; this package itself comes from the build context.
COPY pyproject.toml README.md /tmp/flyteplugins-wandb/
COPY flyteplugins_wandb /tmp/flyteplugins-wandb/flyteplugins_wandb
RUN pip install --no-cache-dir \
        "flyte==2.12.1" \
        "flyteplugins-pytorch==2.12.1" \
        "wandb==0.31.0" \
        /tmp/flyteplugins-wandb \
    && rm -rf /tmp/flyteplugins-wandb

# Flyte unpacks the task's code into the working directory, so it belongs to the user that runs the task.
# A numeric USER lets Kubernetes check runAsNonRoot without looking the name up.
RUN useradd --create-home --uid 1000 --shell /bin/bash flyte
USER 1000:1000
WORKDIR /home/flyte
