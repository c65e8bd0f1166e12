# The zero-shot classifier bot. Build: docker build -t zsl-bot .
# Run:   docker run --env-file .env -v zsl-data:/data zsl-bot
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OPENBLAS_NUM_THREADS=1 \
    OMP_NUM_THREADS=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ZSL_CACHE_DIR=/opt/zsl/cache \
    ZSL_DATABASE_URL=sqlite:////data/zsl.sqlite3

WORKDIR /app

# Dependencies and the code; .dockerignore keeps .env, data and caches out of the context.
COPY pyproject.toml README.md ./
COPY zsl ./zsl
COPY bot ./bot
# The builder's own package-index settings (a mirror, a proxy's certificate, constraints) come in
# as build secrets, mounted for this step only and never stored in a layer; without them pip uses
# PyPI. .ci/compose passes the host's: docker build --secret id=pip.conf,src=... (BuildKit).
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-cert \
    --mount=type=secret,id=pip-constraints \
    pip install .

# Convert the default model (GloVe 6B 50d) now, so the container starts in seconds and
# memory-maps one read-only copy.
RUN python -c "import zsl; zsl.load_vectors(cache_dir='/opt/zsl/cache')" \
    && chmod -R a+rX /opt/zsl/cache

# A non-root user; the class registry (SQLite) lives on a volume.
RUN useradd --create-home --uid 10001 zsl \
    && mkdir -p /data \
    && chown zsl:zsl /data
USER zsl
VOLUME ["/data"]

CMD ["python", "-m", "bot"]
