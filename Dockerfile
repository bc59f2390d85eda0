# syntax=docker/dockerfile:1
# OpenTelemetry trace gateway image.
#
# Two stages on the same base, so the virtual environment built in the first runs unchanged in the
# second (same interpreter path): the final image holds the venv, the config and nothing that builds.
# tests/deploy/test_dockerfile.py repeats these install steps in a fresh venv and starts the gateway
# the way ENTRYPOINT + CMD below do; keep the two in step.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# .dockerignore lets in only what the wheel is built from.
COPY . .
# The wheel first, on its own (--no-deps): the project is built here, its dependencies are
# installed from their published wheels as pyproject.toml pins them.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-cache-dir /wheels/*.whl

FROM ${PYTHON_IMAGE}
ARG GATEWAY_UID=10001
LABEL org.opencontainers.image.title="otel-trace-gateway" \
      org.opencontainers.image.description="OpenTelemetry trace gateway (OTLP in, fan-out to tracing backends)"
# A numeric, non-root user so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
# /var/lib/gateway holds the persistent queue (file_storage extension); a volume is mounted there.
RUN groupadd --system --gid "${GATEWAY_UID}" gateway \
    && useradd --system --uid "${GATEWAY_UID}" --gid gateway --no-create-home \
        --home-dir /var/lib/gateway --shell /usr/sbin/nologin gateway \
    && mkdir -p /var/lib/gateway/queue /etc/gateway \
    && chown -R "${GATEWAY_UID}:${GATEWAY_UID}" /var/lib/gateway
COPY --from=build /opt/venv /opt/venv
COPY config.yaml /etc/gateway/config.yaml
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/gateway
USER ${GATEWAY_UID}:${GATEWAY_UID}
# OTLP gRPC, OTLP HTTP, health_check, Prometheus /metrics.
EXPOSE 4317 4318 13133 8888
# No curl in the slim base: the interpreter does the check. urlopen raises on a 503 (not ready).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:13133/', timeout=4)"]
# Exec form, no shell in between: the gateway is PID 1 and receives SIGTERM itself, then drains
# (service.shutdown_timeout, default 30s). Give `docker stop -t` / terminationGracePeriodSeconds more.
STOPSIGNAL SIGTERM
ENTRYPOINT ["otel-gateway"]
CMD ["--config", "/etc/gateway/config.yaml"]
