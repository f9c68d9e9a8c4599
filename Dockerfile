# One image for every process of the engine: api, coordinator, worker, flower, migrate.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml constraints.txt README.md ./
COPY workflow_engine ./workflow_engine
RUN pip install --no-cache-dir -c constraints.txt . && useradd --system --home /app wfe

# deployable code: agent modules and workflow definitions
COPY workers ./workers
COPY config ./config
RUN chown -R wfe /app
USER wfe

CMD ["wfe", "--help"]
