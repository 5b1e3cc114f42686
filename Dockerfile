# chronik: one image for orchestrators and workers (compose.yaml runs both from it).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY chronik chronik
COPY core core
COPY adapters adapters
COPY api api
COPY projections projections
COPY sql sql
RUN pip install --no-cache-dir . && useradd --create-home chronik
USER chronik
EXPOSE 8080
CMD ["chronik", "--help"]
