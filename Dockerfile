# syntax=docker/dockerfile:1
# Sprout in a container: a static binary on distroless, running as non-root. With no arguments it runs the
# all-in-one config; `--config=sprout:backend` or `--config=sprout:collector-sidecar` pick another role.
#
#   docker build -t sprout .
#   docker run --rm -p 3200:3200 -p 4317:4317 -p 4318:4318 sprout

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0-dev
# remove_all_sd leaves out the Prometheus service discoveries no Sprout config uses (cloud SDKs); static, file,
# HTTP and Kubernetes discovery stay. -s -w drop the symbol table and DWARF. See docs/benchmarks.md#binary-size.
RUN CGO_ENABLED=0 go build -tags remove_all_sd -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/sprout ./cmd/sprout \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sprout /sprout
# The data directory belongs to the nonroot user, so that a volume mounted here (an ECS task-storage volume or a
# compose named volume) starts out writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/sprout
# In a container the listeners must face the network, not the container's own loopback.
ENV SPROUT_DATA=/var/lib/sprout \
    SPROUT_HTTP_ENDPOINT=0.0.0.0:3200 \
    SPROUT_OTLP_GRPC_ENDPOINT=0.0.0.0:4317 \
    SPROUT_OTLP_HTTP_ENDPOINT=0.0.0.0:4318 \
    SPROUT_HEALTH_ENDPOINT=0.0.0.0:13133
USER 65532:65532
EXPOSE 4317 4318 3200 13133 8888
# No curl in a distroless image: the binary probes its own /ready. Sidecar roles override this with
# --url http://localhost:13133/ (the health_check extension), as the ECS and compose examples do.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/sprout", "healthcheck", "--url", "http://localhost:3200/ready"]
ENTRYPOINT ["/sprout"]
