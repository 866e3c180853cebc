# syntax=docker/dockerfile:1
# trailwarden in a container: non-root, read-only root filesystem, a health
# check, the store on a volume. Two ways to get the binary:
#
#   docker build -t trailwarden .                          # compiled in the builder stage
#   cargo build --release --locked && \
#     docker build --build-arg BINARY=local -t trailwarden .  # this checkout's target/release/trailwarden
#
# Run: docker run --read-only --tmpfs /tmp -v tw-data:/var/lib/trailwarden -p 127.0.0.1:8080:8080 trailwarden
# (or `docker compose up`, with a Kafka-compatible broker). See docs/operations.md.
ARG BINARY=build

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches
COPY config ./config
RUN cargo build --release --locked --bin trailwarden \
    && strip target/release/trailwarden \
    && cp target/release/trailwarden /trailwarden

FROM debian:bookworm-slim AS local
COPY target/release/trailwarden /trailwarden
RUN strip /trailwarden 2>/dev/null || true

FROM ${BINARY} AS binary

FROM debian:bookworm-slim
# librdkafka links OpenSSL (SASL_SSL clusters); CA certificates for TLS.
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/trailwarden --shell /usr/sbin/nologin trailwarden \
    && install -d -o trailwarden -g trailwarden -m 0700 /var/lib/trailwarden /var/lib/trailwarden/incoming
COPY --from=binary /trailwarden /usr/bin/trailwarden
COPY packaging/container/trailwarden.toml /etc/trailwarden/trailwarden.toml
COPY rules /etc/trailwarden/rules
USER trailwarden
WORKDIR /var/lib/trailwarden
VOLUME ["/var/lib/trailwarden"]
EXPOSE 8080
# /healthz answers 200 while the daemon runs (no curl in the image: bash's /dev/tcp).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/bin/trailwarden", "--config", "/etc/trailwarden/trailwarden.toml"]
CMD ["run"]
