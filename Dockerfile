# syntax=docker/dockerfile:1
#
# The operator's image: the operator (static, musl) and the built-in Lambda handler's packages for
# both Lambda architectures, on distroless static, as UID 65532. Build (BuildKit):
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t <registry>/privateapi-operator:0.1.0 --push .
#   docker build -t privateapi-operator:0.1.0 .          # this machine's architecture only
#
# The build stage runs on the build machine's platform and cross-compiles: the operator for the
# image's platform (TARGETARCH), the handler for x86_64 and arm64 (both always shipped: a function's
# architecture is chosen per PrivateApi, not by the operator's node). Every Rust target used is
# musl, linked by Debian's cross gcc (self-contained musl CRT and libc; only `ring` has C code).

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build
ARG TARGETARCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc-x86-64-linux-gnu gcc-aarch64-linux-gnu libc6-dev-amd64-cross libc6-dev-arm64-cross \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl
ENV CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=x86_64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_musl=x86_64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc \
    AR_x86_64_unknown_linux_musl=x86_64-linux-gnu-ar \
    AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar \
    CARGO_TARGET_DIR=/build/target \
    CARGO_PROFILE_RELEASE_STRIP=symbols
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY handler ./handler
# The target dir and the registry live in cache mounts, so the results are copied out to /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-musl ;; \
      arm64) target=aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH=$TARGETARCH" >&2; exit 1 ;; \
    esac \
 && cargo build --release --locked --target "$target" --bin privateapi-operator \
 && mkdir -p /out/handler \
 && install -m 0755 "/build/target/$target/release/privateapi-operator" /out/privateapi-operator \
 && handler/package.sh release --locked --target x86_64-unknown-linux-musl --out /out/handler \
 && handler/package.sh release --locked --target aarch64-unknown-linux-musl --out /out/handler \
 && ls -l /out /out/handler

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="privateapi-operator" \
      org.opencontainers.image.description="Runs private AWS API Gateway REST APIs from PrivateApi objects" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/privateapi-operator /usr/local/bin/privateapi-operator
# The paths the Deployment passes as --handler-zip-x86-64 / --handler-zip-arm64.
COPY --from=build /out/handler/privateapi-handler-x86_64.zip /opt/privateapi/handler-x86_64.zip
COPY --from=build /out/handler/privateapi-handler-arm64.zip /opt/privateapi/handler-arm64.zip
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/privateapi-operator"]
