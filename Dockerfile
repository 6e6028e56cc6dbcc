# Warrant container image: a static-ish release binary on a slim base, running as non-root.
#   docker build -t warrant .
#   docker run -p 9191:9191 -v /path/to/warrant.yaml:/etc/warrant/warrant.yaml:ro \
#     -v /path/to/policy.yaml:/etc/warrant/policy.yaml:ro warrant
# In a container, warrant.yaml must listen on 0.0.0.0 and name the policy by its path inside
# the container (policy: /etc/warrant/policy.yaml): see examples/tracing/warrant.yaml and
# examples/tracing/docker-compose.yml.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin warrant

FROM debian:bookworm-slim
COPY --from=build /src/target/release/warrant /usr/local/bin/warrant
USER 65532:65532
ENTRYPOINT ["warrant"]
CMD ["serve", "--config", "/etc/warrant/warrant.yaml"]
