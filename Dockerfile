# Warrant container image: a static-ish release binary on a slim base, running as non-root.
#   docker build -t warrant .
#   docker run -v $PWD/config:/etc/warrant warrant serve --config /etc/warrant/warrant.yaml
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin warrant

FROM debian:bookworm-slim
COPY --from=build /src/target/release/warrant /usr/local/bin/warrant
USER 65532:65532
ENTRYPOINT ["warrant"]
CMD ["serve", "--config", "/etc/warrant/warrant.yaml"]
