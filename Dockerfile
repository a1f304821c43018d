# syntax=docker/dockerfile:1
# The xacct image: `docker build -t xacct:0.1.0 .`
#
# Build stage: the release binary, with the locked dependency versions. The binary links glibc
# (aws-lc-rs), so the runtime is distroless "cc" (glibc, libgcc_s) of the same Debian release.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin xacct \
    && install -m 0755 target/release/xacct /usr/local/bin/xacct

# Runtime: no shell, no package manager, user 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/xacct /xacct
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/xacct"]
CMD ["run"]
