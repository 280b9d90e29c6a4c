#!/usr/bin/env bash
# Installs Debian's PostgreSQL for the assembly app's tests, which start a server of their own
# on a temporary data directory and a free port (tests/assembly/assembly_postgres.py): nothing
# here starts or configures one. Without it those tests skip and say why, so a failed install
# does not fail CI by itself: this script always exits 0.
set -uo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "ci: not root and no sudo: cannot install PostgreSQL; its tests will be skipped"
    exit 0
  fi
fi
if $SUDO apt-get update -qq \
  && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; then
  echo "ci: installed PostgreSQL $(ls /usr/lib/postgresql | tr '\n' ' ')"
else
  echo "ci: could not install PostgreSQL; the PostgreSQL tests will be skipped"
fi
exit 0
