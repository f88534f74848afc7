# syntax=docker/dockerfile:1
# imagesync: syncd (the daemon), syncctl (the operator CLI) and snf-sandbox
# (the local Synnefo stand-in) in one small image.
#
#   docker build -t imagesync --build-arg VERSION=$(git describe --tags --always --dirty) .
#   docker run --rm -v $PWD/configs/syncd.production.yaml:/etc/imagesync/syncd.yaml:ro \
#       -v /srv/images:/srv/images:ro -v imagesync-state:/var/lib/imagesync \
#       -e SYNCD_TOKEN_FILE=/run/secrets/syncd_token ... imagesync
#
# docker-compose.yml at the repository root runs it with Redis (and, with
# --profile sandbox, a demo cloud). The configuration is not baked in: mount
# it at /etc/imagesync/syncd.yaml.

# ---- build -------------------------------------------------------------------
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not re-download them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# What --version prints. .git stays out of the build context, so the
# toolchain has no VCS stamp to fall back on: pass it, as the Makefile does,
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) .
ARG VERSION=
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
        -ldflags="-s -w ${VERSION:+-X github.com/imagesync/imagesync/internal/version.Version=${VERSION}}" \
        -o /out/ ./cmd/syncd ./cmd/syncctl ./cmd/snf-sandbox

# ---- runtime -----------------------------------------------------------------
# debian:bookworm-slim rather than distroless: syncd talks HTTPS to the cloud
# (ca-certificates) and the HEALTHCHECK needs an HTTP client (curl); the
# binaries themselves are static.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 imagesync \
 && useradd --system --uid 10001 --gid imagesync --home-dir /var/lib/imagesync \
        --shell /usr/sbin/nologin imagesync \
 && install -d -o root -g imagesync -m 0750 /etc/imagesync \
 && install -d -o imagesync -g imagesync -m 0700 /var/lib/imagesync \
 && install -d -o root -g root -m 0755 /srv/images /opt/imagesync/configs \
 && ln -s /etc/imagesync/syncd.yaml /opt/imagesync/configs/syncd.yaml
COPY --from=build /out/syncd /out/syncctl /out/snf-sandbox /usr/local/bin/

# The state dir (hashmap cache) survives restarts on a volume; a named volume
# picks up this directory's ownership. The metrics/health listener must not
# stay on loopback inside a container: publish the port instead (compose binds
# it to the host's loopback).
ENV SYNCD_STATE_DIR=/var/lib/imagesync \
    SYNCD_HTTP_LISTEN=0.0.0.0:9464
VOLUME ["/var/lib/imagesync"]
# syncd and syncctl look for configs/syncd.yaml without --config: here that is
# a link to /etc/imagesync/syncd.yaml, so `docker compose exec syncd syncctl
# status` needs no flags.
WORKDIR /opt/imagesync
USER imagesync:imagesync
EXPOSE 9464

# /healthz answers 200 while syncd runs and reaches Redis (/readyz also waits
# for the first scan and a valid token; use it for alerting, not restarts).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:9464/healthz || exit 1

# SIGTERM lets running jobs finish or requeues them (uploads resume where they
# stopped); give it more than Docker's default 10s (compose sets 30s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/syncd"]
CMD ["--config", "/etc/imagesync/syncd.yaml"]
