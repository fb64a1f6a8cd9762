# syntax=docker/dockerfile:1
# The pgkeel container image: the `pgkeel` binary plus PostgreSQL 17's client programs
# (pg_dump, pg_restore, psql) that `pgkeel backup`, `restore` and `deploy` drive.
#
#   DOCKER_BUILDKIT=1 docker build -t pgkeel .
#   docker run --rm -e DATABASE_URL -v "$PWD:/app" --user "$(id -u):$(id -g)" pgkeel migrate
#
# Other images take just the binary from it (it needs nothing but glibc):
#   COPY --from=ghcr.io/pgkeel/pgkeel:0.1 /usr/local/bin/pgkeel /usr/local/bin/pgkeel

ARG DEBIAN_SUITE=bookworm

# ---------------------------------------------------------------------------------------------
# Builder: the Rust toolchain, and clang/libclang because pg_query compiles PostgreSQL's parser
# from C and runs bindgen (which loads libclang) over its header.
FROM rust:1-${DEBIAN_SUITE} AS builder
# Unpinned on purpose, here and below: Debian's archive keeps only the current version of a
# package, so a pinned one stops building at its next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang libclang-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole workspace (less what .dockerignore drops): Cargo.toml and Cargo.lock at the root with
# crates/; the rest is small.
COPY . .
# Cache mounts keep the crates.io downloads and the compiled dependencies between builds on one
# machine. target/ is a cache mount, so the binary is copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p pgkeel-cli \
    && install -D -m 0755 target/release/pgkeel /out/pgkeel

# ---------------------------------------------------------------------------------------------
# Runtime: no compiler, no Rust, no curl; only the binary, the PostgreSQL client and CA roots.
FROM debian:${DEBIAN_SUITE}-slim

# pg_dump/pg_restore must be at least the server's major version, and Debian bookworm's own
# client is 15: take PGDG's. 17 dumps and restores servers up to 17 (--build-arg PG_MAJOR=18
# for a newer server). The repository key is fetched over https and apt trusts it for the
# PGDG source only (signed-by), not for Debian's.
ARG PG_MAJOR=17
ARG DEBIAN_SUITE
# hadolint ignore=DL3008
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    install -d -m 0755 /usr/share/postgresql-common/pgdg; \
    curl -fsSL --proto '=https' --tlsv1.2 \
        -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt ${DEBIAN_SUITE}-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}"; \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/*

# The versioned bin directory first: pgkeel runs pg_dump from PATH, and this skips Debian's
# perl wrapper (pg_wrapper) that /usr/bin/pg_dump points to.
ENV PATH="/usr/lib/postgresql/${PG_MAJOR}/bin:${PATH}"

# Not root: pgkeel needs no privilege in the container. /app is where a project is mounted and
# where reports/ and backups/ land, so the user owns it (mount with --user to write as yourself).
# USER is numeric so that Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 pgkeel \
    && useradd --system --uid 10001 --gid pgkeel --create-home --home-dir /home/pgkeel \
        --shell /usr/sbin/nologin pgkeel \
    && install -d -o pgkeel -g pgkeel /app

# Last of the filesystem layers: it changes with every commit, the layers above rarely do.
COPY --from=builder /out/pgkeel /usr/local/bin/pgkeel
USER 10001:10001
WORKDIR /app

ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="pgkeel" \
      org.opencontainers.image.description="Safe PostgreSQL schema changes: migrate, validate, monitor, back up, restore, test" \
      org.opencontainers.image.source="https://github.com/pgkeel/pgkeel" \
      org.opencontainers.image.url="https://github.com/pgkeel/pgkeel" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:${DEBIAN_SUITE}-slim"

ENTRYPOINT ["pgkeel"]
CMD ["--help"]
