# Debian-slim, not Alpine: cel-expr-python ships no musl wheels.
FROM python:3.11-slim AS build
WORKDIR /src
COPY clients/python /src/clients/python
COPY pyproject.toml README.md /src/
COPY service /src/service
RUN python -m venv /opt/signoff \
 && /opt/signoff/bin/pip install --no-cache-dir ./clients/python . \
 && find /opt/signoff -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data signoff \
 && mkdir -p /data /policies && chown signoff /data
COPY --from=build /opt/signoff /opt/signoff
COPY policies /policies
# Listening beyond loopback needs authentication: mount a tokens file and set
# SIGNOFF_AUTH__TOKENS_FILE=/run/secrets/tokens.yaml (or configure SIGNOFF_AUTH__JWT__*).
# The checkpoint signing key is created in the data volume on first start.
ENV PATH=/opt/signoff/bin:$PATH \
    SIGNOFF_POLICIES=/policies \
    SIGNOFF_DB=sqlite:////data/signoff.db \
    SIGNOFF_LISTEN=0.0.0.0:50051 \
    SIGNOFF_HTTP_LISTEN=0.0.0.0:8080 \
    SIGNOFF_LOG_FORMAT=json \
    SIGNOFF_AUDIT__CREATE_KEY=true
USER signoff
VOLUME ["/data", "/policies"]
# 50051: gRPC for agents; 8080: the reviewer console and the Connect API for browsers.
EXPOSE 50051 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
  CMD python -c "import grpc,sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; \
r=g.HealthStub(grpc.insecure_channel('127.0.0.1:50051')).Check(h.HealthCheckRequest(), timeout=2); \
sys.exit(r.status != h.HealthCheckResponse.SERVING)"
ENTRYPOINT ["signoff", "serve"]
