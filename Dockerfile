# Warrant container image: a release binary on a slim base, running as non-root, with a
# health check.
#   docker build -t warrant .
#   docker run --rm warrant                    # the shipped config (config/warrant.yaml)
#   docker run -p 9191:9191 -v /path/to/warrant.yaml:/app/config/warrant.yaml:ro \
#     -v /path/to/policy.yaml:/app/config/policy.yaml:ro warrant
# The shipped config listens on 127.0.0.1: to reach Warrant from outside the container, mount a
# warrant.yaml that listens on 0.0.0.0 (see examples/tracing and examples/kubernetes).
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own: rebuilt only when Cargo.toml or Cargo.lock
# change, not on every source edit.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > benches/check.rs \
    && cargo build --release --locked --bin warrant \
    && rm -rf src benches
COPY . .
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin warrant

FROM debian:bookworm-slim
COPY --from=build /src/target/release/warrant /usr/local/bin/warrant
COPY config /app/config
WORKDIR /app
USER 65532:65532
EXPOSE 9191 9090
# Ready while a policy serves (the admin listener's /readyz); no curl needed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["warrant", "ready", "--admin", "127.0.0.1:9090"]
ENTRYPOINT ["warrant"]
CMD ["serve", "--config", "config/warrant.yaml"]
