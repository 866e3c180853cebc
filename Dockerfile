# trailwarden: multi-stage build; runs `trailwarden run` with the shipped config as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY config ./config
RUN cargo build --release --locked --bin trailwarden

FROM debian:bookworm-slim
# librdkafka links OpenSSL (SASL_SSL clusters); CA certificates for ssl.ca.location.
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin trailwarden
WORKDIR /app
COPY --from=build /src/target/release/trailwarden /usr/local/bin/trailwarden
COPY config ./config
COPY rules ./rules
COPY examples ./examples
RUN mkdir -p data && chown trailwarden:trailwarden data
USER trailwarden
VOLUME ["/app/data"]
ENTRYPOINT ["trailwarden"]
CMD ["run", "--config", "config/default.toml"]
