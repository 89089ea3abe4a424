# syntax=docker/dockerfile:1
#
# dcs-log-harvester image: `docker build -t dcs-log-harvester:0.1.0 .`
#
# Nothing secret is baked in: credentials arrive at run time as environment variables
# (docker run --env-file, a Kubernetes Secret), the config as a mounted file, and the archive
# as a volume at /archive. See docs/operations.md.

# ---- build: turn the checkout into a wheel (the only thing the runtime stage receives)
FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY harvester ./harvester
RUN pip wheel --no-deps -w /dist .

# ---- runtime: the wheel and its dependencies, no compiler, no source tree, not root
FROM python:3.11-slim
LABEL org.opencontainers.image.title="dcs-log-harvester" \
      org.opencontainers.image.description="Harvest Redis run logs from Open Telekom Cloud DCS into a dated local archive" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheel is bind-mounted from the builder, so it never becomes a layer of this image.
RUN --mount=type=bind,from=builder,source=/dist,target=/dist \
    pip install /dist/*.whl
# uid/gid 10001: above any distribution's system range, so files on a shared volume never
# belong to an unrelated host account. Kubernetes runs it with runAsUser: 10001 as well.
RUN groupadd --system --gid 10001 harvester \
 && useradd --system --uid 10001 --gid 10001 --home-dir /archive --no-create-home \
            --shell /usr/sbin/nologin harvester \
 && install -d -o 10001 -g 10001 -m 0750 /archive
USER 10001:10001
WORKDIR /archive
VOLUME ["/archive"]
ENTRYPOINT ["harvester"]
CMD ["run", "--config", "/etc/dcs-log-harvester/config.yaml"]
