# weightfs in a container (docs/DEPLOY-GKE.md). Two stages: a Swift build with the standard
# library linked in, then a slim Debian runtime with only what the binary loads (libfuse3,
# libcurl and its TLS, CA certificates) and fuse3's fusermount3 for `weightfs mount`.
# The CUDA backend needs no CUDA here: it loads the node's driver (libcuda) at run time.
#
#   docker build -t REGISTRY/weightfs:TAG .
ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:12-slim

FROM ${SWIFT_IMAGE} AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libfuse3-dev libcurl4-openssl-dev libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
RUN swift build -c release --static-swift-stdlib --product weightfs \
 && install -m 0755 "$(swift build -c release --show-bin-path)/weightfs" /usr/local/bin/weightfs \
 && strip /usr/local/bin/weightfs

FROM ${RUNTIME_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libfuse3-3 fuse3 libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin weightfs
COPY --from=build /usr/local/bin/weightfs /usr/local/bin/weightfs
# `serve`, `preload` and `cp` run unprivileged as this user; `mount` needs /dev/fuse and
# CAP_SYS_ADMIN (a privileged container, configs/gke/vllm-mount/).
USER 10001
ENTRYPOINT ["/usr/local/bin/weightfs"]
CMD ["--help"]
