# One image for every Sluiceway process; the command picks the role:
#   docker run sluiceway api --host 0.0.0.0 | worker --device cuda:0 | scheduler | db upgrade
FROM python:3.11-slim

# torch goes in first, from TORCH_INDEX, so installing the project finds its
# `torch` floor already met and never pulls a different build. The default is
# the small CPU build. On GPU hosts install a CUDA build instead: build with
# TORCH_INDEX=https://pypi.org/simple (PyPI's Linux wheels are CUDA builds) or
# a https://download.pytorch.org/whl/cuXXX index that matches the driver, as
# compose.yaml does for the `worker` image.
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SLUICEWAY_HOME=/var/lib/sluiceway

RUN pip install --index-url "${TORCH_INDEX}" "${TORCH_SPEC}"

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY core ./core
COPY api ./api
COPY workers ./workers
COPY scheduler ./scheduler
COPY cli ./cli
COPY devstack ./devstack
COPY migrations ./migrations
COPY sluiceway ./sluiceway
RUN pip install ".[api,worker,monitoring]"

# Not root; SLUICEWAY_HOME (model cache, local state) belongs to that user, so
# a named volume mounted there starts out writable.
RUN useradd --create-home --uid 10001 sluiceway \
    && mkdir -p /var/lib/sluiceway \
    && chown sluiceway:sluiceway /var/lib/sluiceway
USER sluiceway

EXPOSE 8000
ENTRYPOINT ["sluice"]
CMD ["--help"]
