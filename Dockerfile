# keygate as a container: a static binary (CGO_ENABLED=0; the SQLite driver
# is pure Go) on distroless's static image, running as the image's non-root
# user (uid 65532). The store, the env file and the audit journal live in
# /data, a volume.
#
#   docker build -t keygate .
#   stdio, for a client that launches it:
#     docker run -i --rm -v keygate-data:/data keygate
#   streamable HTTP for a team (put TLS in front, or pass --tls-cert/--tls-key;
#   --public-url is the URL clients use, which OAuth needs beyond loopback):
#     docker run --rm -p 8080:8080 -v keygate-data:/data keygate \
#       serve --transport http --addr 0.0.0.0:8080 --public-url https://keygate.example.com
#
# The first run creates the store and writes the admin token to
# /data/.env; read it with: docker run --rm -v keygate-data:/data --entrypoint
# /usr/local/bin/keygate keygate token list

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/keygate . \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/keygate /usr/local/bin/keygate
COPY --from=build --chown=65532:65532 /out/data /data
ENV KEYGATE_STORE=/data/keygate.db \
    KEYGATE_ENV_FILE=/data/.env \
    XDG_DATA_HOME=/data
VOLUME ["/data"]
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/keygate"]
