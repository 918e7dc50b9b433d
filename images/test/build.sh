#!/usr/bin/env bash
# Build a small local run image offline: debootstrap (Debian bookworm minbase + python3) from the
# Debian mirror apt already uses, then `docker import` (no registry needed).
#   images/test/build.sh [IMAGE]      default codalite-test/py3-bookworm:latest
# The rootfs is cached in $CODALITE_STACK_DIR/images (default /var/cache/codalite-stack/images);
# an image that already exists is left alone (pass --rebuild first to redo it).
set -euo pipefail
if [ "${1:-}" = "--rebuild" ]; then REBUILD=1; shift; else REBUILD=0; fi
IMAGE="${1:-codalite-test/py3-bookworm:latest}"
CACHE="${CODALITE_STACK_DIR:-/var/cache/codalite-stack}/images"
ROOTFS="$CACHE/rootfs-bookworm"

if [ "$REBUILD" = 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
command -v debootstrap >/dev/null || {
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null
}
MIRROR="$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)"
MIRROR="${MIRROR:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
if [ ! -f "$ROOTFS/.complete" ] || [ "$REBUILD" = 1 ]; then
  echo "debootstrap bookworm from $MIRROR into $ROOTFS (about a minute)" >&2
  rm -rf "$ROOTFS"
  mkdir -p "$CACHE"
  debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$ROOTFS" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  touch "$ROOTFS/.complete"
fi
tar -C "$ROOTFS" --exclude=./.complete -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'ENV LANG=C.UTF-8' \
  -m "codalite test image: debootstrap bookworm minbase + python3" - "$IMAGE" >/dev/null
echo "built $IMAGE" >&2
