# Container images of DynamoKV: the storage node (with dynamoctl) and the
# operator, built from
# this workspace in one build stage and copied into small non-root
# runtime images (distroless, uid/gid 65532, nothing but the binary and glibc).
#
#   docker build --target node     -t ghcr.io/dynamokv/dynamo-node:0.1.0 .
#   docker build --target operator -t ghcr.io/dynamokv/dynamo-operator:0.1.0 .
#
# The tag is the workspace version (Cargo.toml), which is also the chart's
# appVersion; scripts/chart-check checks that they agree and that the stages
# copy the workspace's binaries.

ARG VERSION=0.1.0

FROM docker.io/library/rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# protoc comes from the protoc-bin-vendored crate and TLS from rustls, so the
# image's gcc is the only native tool the build needs.
RUN cargo build --release --locked --bin dynamo-node --bin dynamoctl --bin dynamo-operator

FROM gcr.io/distroless/cc-debian12:nonroot AS node
ARG VERSION
LABEL org.opencontainers.image.title="dynamo-node" \
      org.opencontainers.image.description="DynamoKV storage node" \
      org.opencontainers.image.source="https://github.com/dynamokv/dynamokv" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /src/target/release/dynamo-node /usr/local/bin/dynamo-node
# The command-line client, for `kubectl exec` into a node.
COPY --from=build /src/target/release/dynamoctl /usr/local/bin/dynamoctl
USER 65532:65532
# gRPC (clients and peers) and HTTP (/healthz, /readyz, /metrics).
EXPOSE 7400 9400
ENTRYPOINT ["/usr/local/bin/dynamo-node"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
ARG VERSION
LABEL org.opencontainers.image.title="dynamo-operator" \
      org.opencontainers.image.description="DynamoKV Kubernetes operator" \
      org.opencontainers.image.source="https://github.com/dynamokv/dynamokv" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /src/target/release/dynamo-operator /usr/local/bin/dynamo-operator
USER 65532:65532
# /metrics, /healthz and /readyz.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dynamo-operator"]
