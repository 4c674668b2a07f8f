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

source_hash() {
  # A hash of everything `pip install .` builds from: the project file and the package
  # sources (names and bytes), so any edit, addition, removal or rename changes it. Plain
  # find and sha256sum: works in a tarball without git too.
  find pyproject.toml README.md davserver backends -type f \
      ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

ensure_venv() {
  # ensure_venv EXTRAS: install the project from this checkout into .venv, unless what is
  # installed was built from exactly these sources (with these extras): a stamp in .venv
  # holds the hash it was built from, so a start costs no pip run and works offline.
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv 2>/dev/null || {
      rm -rf .venv
      apt_install python3-venv
      python3 -m venv .venv
    }
  fi
  local stamp=".venv/.davserver-installed$1" hash status=0
  hash="$(source_hash)"
  if [ -x .venv/bin/davserver ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
    return 0
  fi
  rm -f .venv/.davserver-installed*  # a reinstall of the package outdates every stamp
  # setuptools' build folder keeps modules the sources no longer have, and would put
  # them into the new install: build from nothing.
  rm -rf build
  .venv/bin/python -m pip install -q --disable-pip-version-check ".$1" 2>&1 \
    | { grep -v "^WARNING: Location" >&2 || true; } || status=$?
  .venv/bin/python -c "import davserver" || { echo "davserver did not install" >&2; exit 1; }
  if [ "$status" != 0 ]; then
    echo "warning: pip failed; .venv keeps the davserver installed before" >&2
    return 0
  fi
  # Installed with extras, the project serves a plain install's needs too.
  echo "$hash" >".venv/.davserver-installed"
  echo "$hash" >"$stamp"
}
