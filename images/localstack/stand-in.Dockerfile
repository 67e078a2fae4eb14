# A stand-in for the upstream image localstack/localstack:4.14.0, for machines that cannot pull
# it (scripts/build-base-images.sh builds it under that tag; users pull the upstream image).
# LocalStack itself is the localstack-core 4.14.0 wheel from PyPI (requirements.txt, pinned with
# hashes), run as the upstream image runs it (`python -m localstack.runtime.main`, the gateway on
# port 4566); its Kinesis engine, kinesis-mock (npm `kinesis-local`, the version LocalStack
# names), is installed in the build where the upstream image fetches it on first use, so the
# container needs no registry at run time.
# LocalStack 4.14 needs Python >= 3.12; the upstream image runs 3.13 (Debian trixie's).
ARG PYTHON_IMAGE=python:3.13-slim-trixie

FROM ${PYTHON_IMAGE} AS localstack-build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
# the upstream image's virtualenv path, which LocalStack's package installers look for
ENV VIRTUAL_ENV=/opt/code/localstack/.venv
COPY requirements.txt /tmp/requirements.txt
# Then `lpm install` (LocalStack's package manager) puts kinesis-mock into /usr/lib/localstack,
# the static libraries it looks in before downloading; npm trusts the system CAs (which hold a
# proxying egress's CA where there is one).
RUN python3 -m venv "${VIRTUAL_ENV}" \
    && "${VIRTUAL_ENV}/bin/pip" install --no-cache-dir --require-hashes -r /tmp/requirements.txt \
    && NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    "${VIRTUAL_ENV}/bin/python" -m localstack.cli.lpm install kinesis-mock \
    && test -f /usr/lib/localstack/kinesis-local/0.5.2/node_modules/kinesis-local/main.js

FROM ${PYTHON_IMAGE} AS localstack
# nodejs runs kinesis-mock; curl is the upstream image's (and compose's) healthcheck tool
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=localstack-build /opt/code/localstack/.venv /opt/code/localstack/.venv
COPY --from=localstack-build /usr/lib/localstack /usr/lib/localstack
ENV VIRTUAL_ENV=/opt/code/localstack/.venv \
    PATH=/opt/code/localstack/.venv/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GATEWAY_LISTEN=0.0.0.0:4566 \
    LOCALSTACK_HOST=localhost.localstack.cloud:4566 \
    DISABLE_EVENTS=1 \
    SKIP_SSL_CERT_DOWNLOAD=1
# state and runtime-installed packages, a volume as in the upstream image
VOLUME /var/lib/localstack
EXPOSE 4566
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=10 \
    CMD ["curl", "-fs", "http://127.0.0.1:4566/_localstack/health"]
CMD ["python", "-m", "localstack.runtime.main"]
