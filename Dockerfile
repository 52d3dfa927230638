# Debian-slim, not Alpine: cel-expr-python ships no musl wheels.
FROM python:3.11-slim AS build
WORKDIR /src
COPY clients/python /src/clients/python
COPY pyproject.toml README.md /src/
COPY service /src/service
RUN python -m venv /opt/signoff \
 && /opt/signoff/bin/pip install --no-cache-dir ./clients/python '.[analyze,slack]' \
 && /opt/signoff/bin/python -m pip uninstall --yes --quiet pip setuptools \
 && find /opt/signoff -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data signoff \
 && mkdir -p /data /policies && chown signoff /data
COPY --from=build /opt/signoff /opt/signoff
COPY policies /policies
# Listening beyond loopback needs authentication: mount a tokens file and set
# SIGNOFF_AUTH__TOKENS_FILE=/run/secrets/tokens.yaml (or configure SIGNOFF_AUTH__JWT__*).
# The checkpoint signing key is created on first start in /data/state (mode 0700, the key
# 0600): on the data volume, so it outlives the container with the log it signs, but not
# beside the database file. To keep it off that volume, mount it as a secret and set
# SIGNOFF_AUDIT__SIGNING_KEY to its path.
ENV PATH=/opt/signoff/bin:$PATH \
    SIGNOFF_POLICIES=/policies \
    SIGNOFF_DB=sqlite:////data/signoff.db \
    SIGNOFF_STATE_DIR=/data/state \
    SIGNOFF_LISTEN=0.0.0.0:50051 \
    SIGNOFF_HTTP_LISTEN=0.0.0.0:8080 \
    SIGNOFF_LOG_FORMAT=json \
    SIGNOFF_AUDIT__CREATE_KEY=true
USER signoff
VOLUME ["/data", "/policies"]
# 50051: gRPC for agents; 8080: the reviewer console and the Connect API for browsers.
EXPOSE 50051 8080
# `signoff health` asks grpc.health.v1 on the port SIGNOFF_LISTEN names: SERVING only once
# the database is open and the policies are loaded, NOT_SERVING from the first SIGTERM.
# The start period covers a migration on first start.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["signoff", "health", "--timeout", "3"]
ENTRYPOINT ["signoff", "serve"]
