# Sourced by scripts/serve and scripts/test: make sure Python's venv module, the project's
# virtualenv (.venv) with davserver installed, and any Debian packages named exist.
# Works on a fresh Debian machine with Python 3.11, as root or with sudo.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  # apt_install PKG...: install Debian packages, refreshing the package lists once if needed.
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" \
    >/dev/null 2>&1 || {
    as_root apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@"
  }
}

ensure_venv() {
  # ensure_venv EXTRAS: (re)install the project from this checkout into .venv.
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv 2>/dev/null || {
      rm -rf .venv
      apt_install python3-venv
      python3 -m venv .venv
    }
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check ".$1" 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
  .venv/bin/python -c "import davserver" || { echo "davserver did not install" >&2; exit 1; }
}
