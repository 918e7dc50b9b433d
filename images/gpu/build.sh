#!/usr/bin/env bash
# Build the codalite GPU run image without pulling from any container registry:
#   1. debootstrap Debian bookworm (minbase + python3, python3-venv) from the Debian mirror apt uses;
#   2. `docker import` it as a base image;
#   3. in a container of that base: a venv at /opt/venv with torch (the CUDA build from PyPI, which
#      carries its CUDA runtime libraries as nvidia-* wheels) + images/requirements-run.txt;
#   4. `docker commit` that container with the image's environment (offline by default, GPUs visible).
#
#   images/gpu/build.sh [--rebuild] [--cpu] [IMAGE]     default IMAGE: codalite/run-gpu:0.1
#     --rebuild  redo everything (the debootstrap rootfs and the base too); without it an existing IMAGE is kept
#     --cpu      torch's CPU wheel instead (from PIP_FIND_LINKS, e.g. /opt/wheels; PyPI's torch is the CUDA one)
# Caches: $CODALITE_STACK_DIR/images (rootfs, default /var/cache/codalite-stack/images) and .../pip
# (pip's download cache: a rebuild does not download the ~4 GB of CUDA wheels again).
# pip inside the container trusts the host's CA bundle (bind-mounted, not baked in), so a TLS-intercepting
# proxy that the host trusts works in the build too.
set -euo pipefail
REBUILD=0 CPU=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rebuild) REBUILD=1; shift ;;
    --cpu) CPU=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
IMAGE="${1:-codalite/run-gpu:0.1}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REQS="$HERE/../requirements-run.txt"
TORCH="torch==2.13.0"
CACHE="${CODALITE_STACK_DIR:-/var/cache/codalite-stack}/images"
ROOTFS="$CACHE/rootfs-bookworm-venv"
BASE="codalite/bookworm-venv:base"
CA="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
log() { echo "[images/gpu/build.sh $(date +%T)] $*" >&2; }

command -v docker >/dev/null || { echo "build.sh: error: docker is not installed (apt-get install docker.io)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "build.sh: error: no Docker engine (start dockerd; tests/codalab/stack.sh docker does)" >&2; exit 1; }
if [ "$REBUILD" = 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"; exit 0  # already built (--rebuild redoes it)
fi
command -v debootstrap >/dev/null || {
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null
}
START=$(date +%s)

# 1. rootfs (cached; `.complete` marks a finished one, so a half-made rootfs is never imported)
if [ ! -f "$ROOTFS/.complete" ] || [ "$REBUILD" = 1 ]; then
  MIRROR="$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)"
  MIRROR="${MIRROR:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}"
  MIRROR="${MIRROR:-http://deb.debian.org/debian}"
  log "debootstrap bookworm from $MIRROR into $ROOTFS (about 2 minutes)"
  umount "$ROOTFS/proc" "$ROOTFS/sys" 2>/dev/null || true  # left mounted by a debootstrap that died
  rm -rf "$ROOTFS"
  mkdir -p "$CACHE"
  if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOTFS" "$MIRROR" \
      >"$CACHE/debootstrap-venv.log" 2>&1; then
    umount "$ROOTFS/proc" "$ROOTFS/sys" 2>/dev/null || true
    tail -20 "$CACHE/debootstrap-venv.log" >&2
    exit 1
  fi
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  touch "$ROOTFS/.complete"
fi

# 2. base image (import drops ENV, so PATH and LANG are set here)
if [ "$REBUILD" = 1 ] || ! docker image inspect "$BASE" >/dev/null 2>&1; then
  log "docker import $BASE"
  tar -C "$ROOTFS" --exclude=./.complete -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'ENV LANG=C.UTF-8' \
    -m "codalite: debootstrap bookworm minbase + python3 + python3-venv" - "$BASE" >/dev/null
fi

# 3. the venv, installed in a container (network: PyPI; the pip cache and the CA bundle are mounted)
mkdir -p "$CACHE/pip"
NAME="codalite_build_$$"
MOUNTS=(-v "$CACHE/pip:/root/.cache/pip" -v "$(cd "$(dirname "$REQS")" && pwd)/requirements-run.txt:/tmp/requirements-run.txt:ro")
PIPENV=(-e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PIP_DEFAULT_TIMEOUT=180)
if [ -f "$CA" ]; then MOUNTS+=(-v "$CA:/run/host-ca.crt:ro"); PIPENV+=(-e PIP_CERT=/run/host-ca.crt); fi
if [ "$CPU" = 1 ]; then
  WHEELS="${PIP_FIND_LINKS:-/opt/wheels}"
  ls "$WHEELS"/torch-2.13.0+cpu-*.whl >/dev/null 2>&1 \
    || { echo "build.sh: error: --cpu needs torch-2.13.0+cpu-*.whl in $WHEELS (set PIP_FIND_LINKS)" >&2; exit 1; }
  MOUNTS+=(-v "$WHEELS:/wheels:ro"); PIPENV+=(-e PIP_FIND_LINKS=/wheels); TORCH="torch==2.13.0+cpu"
fi
trap 'docker rm -f "$NAME" >/dev/null 2>&1 || true' EXIT
log "pip install $TORCH + requirements-run.txt into /opt/venv$([ "$CPU" = 1 ] || echo " (the CUDA wheels: ~4 GB the first time)")"
docker run --name "$NAME" "${MOUNTS[@]}" "${PIPENV[@]}" "$BASE" /bin/bash -c "
  set -e
  python3 -m venv /opt/venv
  /opt/venv/bin/pip install -q '$TORCH'
  /opt/venv/bin/pip install -q -r /tmp/requirements-run.txt
  /opt/venv/bin/python -c 'import torch, transformers, peft, accelerate; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda)'
  find /opt/venv -name __pycache__ -prune -exec rm -rf {} +
" >&2

# 4. the image: offline by default (the download step turns the hub on for itself), GPUs visible to
# the NVIDIA container toolkit, /opt/venv first on PATH
docker commit \
  -c 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1' \
  -c 'ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility' \
  -c 'CMD ["/bin/bash"]' \
  -m "codalite run image: $TORCH + images/requirements-run.txt (images/gpu/build.sh)" "$NAME" "$IMAGE" >/dev/null
log "built $IMAGE in $(( $(date +%s) - START )) s ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f GB", $1/1e9}'))"
echo "$IMAGE"
