#!/usr/bin/env bash
# Install the system packages Relate Mail needs on Debian or Ubuntu.
#   deploy/install-deps.sh run    what `make run` needs (Python's venv module)
#   deploy/install-deps.sh test   plus PostgreSQL and the real mail clients the tests drive
# Only missing packages are installed; as a non-root user sudo is used when available.
set -euo pipefail

mode=${1:-run}
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  pyver=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  need+=("python3-venv" "python${pyver}-venv")
fi
if [ "$mode" = "test" ]; then
  # swaks speaks TLS (STARTTLS, --tlsc) only with its recommended Perl TLS modules.
  for pkg in swaks libnet-ssleay-perl libio-socket-ssl-perl fetchmail getmail6 isync; do
    have "$pkg" || need+=("$pkg")
  done
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    need+=("postgresql")
  fi
fi

[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: please install: ${need[*]} (no apt-get here)" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "install-deps: please install as root: apt-get install ${need[*]}" >&2
    exit 0
  fi
fi
echo "install-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
# python3.X-venv may not exist under that name on every release: install what exists.
avail=()
for pkg in "${need[@]}"; do
  if apt-cache show "$pkg" >/dev/null 2>&1; then avail+=("$pkg"); fi
done
[ ${#avail[@]} -eq 0 ] || $sudo apt-get install -y -qq --no-install-recommends "${avail[@]}" >/dev/null
