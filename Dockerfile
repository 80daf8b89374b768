# cti-bridge daemon.
#   docker build -t cti-bridge .
#   docker run --init -d --name cti-bridge -e CTI_AMI_SECRET=... -p 8080:8080 \
#     -v /etc/cti-bridge:/etc/cti-bridge:ro \
#     -v cti-bridge-data:/var/lib/cti-bridge \
#     -v /mnt/pbx-main/monitor:/mnt/pbx-main/monitor:ro \
#     cti-bridge
# /etc/cti-bridge holds cti-bridge.yaml (and includes, secret files); the volume
# /var/lib/cti-bridge the SQLite store and speech models; the recordings mount must match
# pbxs[].recording_paths[].local. Paths in the config are paths inside the container.
# The pages and the HTTP API listen on web.port; set web.host: 0.0.0.0 in the config so the
# published port reaches them, and put a TLS proxy in front (then web.secure_cookies: true).

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Every dependency ships as a wheel for this platform, so no compiler is needed.
COPY pyproject.toml README.md ./
COPY cti_bridge ./cti_bridge
RUN python -m venv /opt/cti-bridge \
 && /opt/cti-bridge/bin/pip install . \
 && /opt/cti-bridge/bin/cti-bridge --help >/dev/null

FROM python:3.11-slim-bookworm
# A fixed uid makes the volume's ownership predictable on the host.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/cti-bridge \
        --shell /usr/sbin/nologin cti-bridge \
 && install -d -o cti-bridge -g cti-bridge -m 0750 /var/lib/cti-bridge \
 && install -d -m 0755 /etc/cti-bridge
# Same base image and path as the build stage, so the venv works as copied.
COPY --from=build /opt/cti-bridge /opt/cti-bridge
ENV PATH=/opt/cti-bridge/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CTI_BRIDGE_CONFIG=/etc/cti-bridge/cti-bridge.yaml
USER cti-bridge
WORKDIR /var/lib/cti-bridge
VOLUME ["/var/lib/cti-bridge"]
EXPOSE 8080
# The daemon stops cleanly on SIGTERM (what `docker stop` sends).
STOPSIGNAL SIGTERM
ENTRYPOINT ["cti-bridge"]
CMD ["run", "-c", "/etc/cti-bridge/cti-bridge.yaml"]
