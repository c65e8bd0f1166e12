# A stand-in for the official postgres image, for .ci/compose only: where base images cannot be
# pulled, Debian's PostgreSQL on top of the python:3.11-slim stand-in (itself Debian bookworm).
# It honours what docker-compose.yml uses of the official image: POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB, the data in /var/lib/postgresql/data, pg_isready; PGPORT and
# POSTGRES_LISTEN_ADDRESSES (default *) say where it listens.
FROM python:3.11-slim

# No cluster from the package: the entrypoint makes one in the data volume on first start.
RUN mkdir -p /etc/postgresql-common \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        postgresql-15 >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data \
    && chown postgres:postgres /var/lib/postgresql/data \
    && chmod 700 /var/lib/postgresql/data

COPY postgres-entrypoint /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
USER postgres
VOLUME ["/var/lib/postgresql/data"]
CMD ["postgres-entrypoint"]
