#!/usr/bin/env bash
# Build locally the base images our Dockerfiles start FROM, for machines that cannot pull from
# a registry (CI here). The Dockerfiles stay the ones users build against public registries:
# this only creates look-alikes under the same tags, from Debian packages:
#   python:3.11-slim-bookworm  = debootstrap bookworm (minbase) + python3 (3.11), venv, pip,
#                                 with `python`/`pip` on PATH as in the official image.
# The look-alike also trusts this machine's extra CA certificates (/usr/local/share/
# ca-certificates), so builds inside it reach the package registries through this machine's
# TLS-intercepting egress. An image already present is reused (cached between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export DOCKER_HOST=${DOCKER_HOST:-$(scripts/docker-engine.sh host)}
cache=${PINPIPE_DOCKER_ROOT:-/var/cache/pinpipe/docker}/../base-rootfs
reproducible="python:3.11-slim-bookworm"

# Base images: the defaults of `ARG *_IMAGE=` build args, and literal FROMs that are not stages.
stages=$(grep -hoiE '^FROM .* AS [a-z0-9_-]+' images/*/Dockerfile | awk '{print $NF}' | sort -u)
wanted=$( (grep -hE '^ARG [A-Z_]+_IMAGE=' images/*/Dockerfile | sed -E 's/^ARG [A-Z_]+_IMAGE=//';
           grep -h '^FROM ' images/*/Dockerfile | awk '{print $2}' | grep -v '^\$') \
         | grep -vxF -f <(echo "$stages") | sort -u)
for image in $wanted; do
  if ! grep -qx "$image" <<<"$reproducible"; then
    echo "base image $image: no local recipe (left to its compose profile)"
    continue
  fi
  if docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image: present"
    continue
  fi
  rootfs="$cache/bookworm-python"
  if [[ ! -f "$rootfs.done" ]]; then
    echo "base image $image: debootstrap bookworm (a few minutes, cached afterwards)..."
    rm -rf "$rootfs" && mkdir -p "$rootfs"
    debootstrap --variant=minbase \
      --include=python3,python3-venv,python3-pip,ca-certificates,netbase,tzdata \
      bookworm "$rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/debootstrap.log"; exit 1; }
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python3"
    ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
    rm -f "$rootfs"/usr/lib/python3.*/EXTERNALLY-MANAGED  # as in the official image
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    touch "$rootfs.done"
  fi
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$image" >/dev/null
  echo "base image $image: built"
done
