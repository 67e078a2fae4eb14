#!/usr/bin/env bash
# Build locally the base images our Dockerfiles start FROM, for machines that cannot pull from
# a registry (CI here). The Dockerfiles stay the ones users build against public registries:
# this only creates look-alikes under the same tags, from Debian packages:
#   python:3.11-slim-bookworm  = debootstrap bookworm (minbase) + python3 (3.11), venv, pip,
#                                 with `python`/`pip` on PATH as in the official image.
#   maven:3-eclipse-temurin-17 = the python look-alike + Debian's OpenJDK 17 JDK and Maven 3
#                                 (`mvn` on PATH): the build stages that resolve jvm/pom.xml.
#   node:18-bookworm-slim      = the python look-alike + Debian's Node.js 18 and npm: the build
#                                 stage that installs node/package-lock.json.
#   localstack/localstack:4.14.0 = images/localstack/stand-in.Dockerfile on a
#                                 python:3.13-slim-trixie look-alike (debootstrap trixie): the
#                                 localstack-core 4.14.0 wheel from PyPI and its Kinesis engine
#                                 (kinesis-mock, npm `kinesis-local`); the compose profile
#                                 `localstack` runs it. Not a project image: users pull it.
# The look-alikes trust this machine's extra CA certificates (/usr/local/share/ca-certificates;
# Java's trust store is generated from the same system store), so builds inside them reach the
# package registries (PyPI, Maven Central, npm) through this machine's TLS-intercepting egress.
# An image already present is reused (cached between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export DOCKER_HOST=${DOCKER_HOST:-$(scripts/docker-engine.sh host)}
cache=${PINPIPE_DOCKER_ROOT:-/var/cache/pinpipe/docker}/../base-rootfs
python_image="python:3.11-slim-bookworm"

# Base images: the defaults of `ARG *_IMAGE=` build args, and literal FROMs that are not stages.
stages=$(grep -hoiE '^FROM .* AS [a-z0-9_-]+' images/*/Dockerfile | awk '{print $NF}' | sort -u)
# Then the upstream images compose runs as they are (`image:` without a build).
wanted=$( (grep -hE '^ARG [A-Z_]+_IMAGE=' images/*/Dockerfile | sed -E 's/^ARG [A-Z_]+_IMAGE=//';
           grep -h '^FROM ' images/*/Dockerfile | awk '{print $2}' | grep -v '^\$';
           grep -hE '^    image: [^$]+$' compose/docker-compose.yml | awk '{print $2}') \
         | grep -vxF -f <(echo "$stages") | sort -u)

# A python look-alike: Debian `suite`'s python3 in a minbase debootstrap.
build_python() {
  local image=$1 suite=${2:-bookworm}
  local rootfs="$cache/$suite-python" log="$cache/$suite-debootstrap.log"
  if [[ ! -f "$rootfs.done" ]]; then
    echo "base image $image: debootstrap $suite (a few minutes, cached afterwards)..."
    rm -rf "$rootfs" && mkdir -p "$rootfs"
    debootstrap --variant=minbase \
      --include=python3,python3-venv,python3-pip,ca-certificates,netbase,tzdata \
      "$suite" "$rootfs" http://deb.debian.org/debian >"$log" 2>&1 \
      || { tail -20 "$log"; exit 1; }
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
}

# A look-alike built FROM the python one: Debian packages (the arguments after the tag), then
# the Dockerfile lines on stdin. Debian's ca-certificates-java builds Java's trust store from
# the system store, which already holds this machine's CAs.
build_on_python() {
  local image=$1 log="$cache/${1//[:\/]/_}.log"
  shift
  { echo "FROM $python_image"
    echo "RUN mkdir -p /usr/share/man/man1 && apt-get update" \
      "&& apt-get install -y --no-install-recommends $* && rm -rf /var/lib/apt/lists/*"
    cat
  } | docker build --tag "$image" - >"$log" 2>&1 || { tail -20 "$log"; exit 1; }
}

# the python look-alike first: the others start FROM it
for image in "$python_image" $(grep -vxF "$python_image" <<<"$wanted"); do
  if docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image: present"
    continue
  fi
  case $image in
    "$python_image") build_python "$image" ;;
    maven:3-eclipse-temurin-17)
      echo "base image $image: Debian's OpenJDK 17 + Maven on $python_image..."
      build_on_python "$image" openjdk-17-jdk-headless maven <<<'CMD ["mvn", "--version"]'
      ;;
    node:18-bookworm-slim)
      echo "base image $image: Debian's Node.js 18 + npm on $python_image..."
      build_on_python "$image" nodejs npm \
        <<<$'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt\nCMD ["node"]'
      ;;
    localstack/localstack:4.14.0)
      # LocalStack 4.14 needs Python >= 3.12 (PEP 695 syntax); its upstream image runs 3.13
      trixie_image=python:3.13-slim-trixie
      docker image inspect "$trixie_image" >/dev/null 2>&1 || build_python "$trixie_image" trixie
      echo "base image $image: localstack-core 4.14.0 from PyPI on $trixie_image..."
      log="$cache/localstack.log"
      docker build --tag "$image" --build-arg PYTHON_IMAGE="$trixie_image" \
        --file images/localstack/stand-in.Dockerfile images/localstack \
        >"$log" 2>&1 || { tail -20 "$log"; exit 1; }
      ;;
    *)
      echo "base image $image: no local recipe (left to its compose profile)"
      continue
      ;;
  esac
  echo "base image $image: built"
done
