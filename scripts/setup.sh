#!/usr/bin/env bash
# Create .venv with everything Legion needs, pinned by constraints.txt. Safe to run again: it only adds
# what is missing. Used by the README's two commands and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! command -v uv >/dev/null 2>&1; then
  "$PYTHON" -m pip install --quiet uv
fi
if [ ! -x .venv/bin/python ]; then
  uv venv --quiet --python "$PYTHON" .venv
fi
uv pip install --quiet --python .venv/bin/python -c constraints.txt -e '.[dev]'

# The dashboard's browser test drives Debian's Chromium (a test tool never downloads a browser of its own).
# Installed once, quietly, when missing and we may; without it that one test is skipped and says why.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
    >/dev/null 2>&1 || echo "setup: could not install chromium; the dashboard's browser test will be skipped" >&2
fi

# `legion model image` and its tests build, run and push real images with Debian's daemonless container tools and
# run Debian's registry on loopback (the base image is made with debootstrap: nothing is pulled). Installed once,
# quietly, when missing and we may; without podman those tests are skipped and say why.
CONTAINER_PACKAGES="podman buildah skopeo runc fuse-overlayfs slirp4netns uidmap debootstrap docker-registry"
if ! { command -v podman && command -v skopeo && command -v debootstrap && command -v docker-registry; } >/dev/null 2>&1 \
  && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # shellcheck disable=SC2086  # the list is meant to split into words
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $CONTAINER_PACKAGES; } \
    >/dev/null 2>&1 || echo "setup: could not install the container tools; the image tests will be skipped" >&2
fi

# The local runtime runs user code (trainings, packagings, model replicas) in a bubblewrap sandbox, away from the
# platform's keys and database, and refuses to run it without one (see the README). Installed when missing and we may.
if ! command -v bwrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap; }; } \
    >/dev/null 2>&1 || echo "setup: could not install bubblewrap; the local runtime will refuse to run user code" >&2
fi

# promtool checks the alert rules in deploy/prometheus, and `legion up --prometheus` (and its test) runs the
# prometheus server. Only the binaries are needed, not a Prometheus service: unpack Debian's prometheus package into
# .cache/ (no install scripts run, no daemon starts) unless both are on PATH already.
if ! { command -v promtool && command -v prometheus; } >/dev/null 2>&1 \
  && [ ! -x .cache/prometheus/usr/bin/prometheus ] && command -v apt-get >/dev/null 2>&1; then
  mkdir -p .cache/debs
  { (cd .cache/debs && apt-get download -qq prometheus) \
    && dpkg-deb -x "$(ls .cache/debs/prometheus_*.deb | head -n 1)" .cache/prometheus; } >/dev/null 2>&1 \
    || echo "setup: could not unpack prometheus; its tests are skipped and the alert rules get a structural check" >&2
fi
