#!/usr/bin/env bash
# Installs what msgstore needs to build, test and benchmark on Debian 12, only when missing.
# Every dependency is a Debian package; docs/ARCHITECTURE.md says why each one is here.
set -euo pipefail

packages=(
  g++ cmake ninja-build make pkg-config     # toolchain (CMake >= 3.25 is Debian 12's)
  libcli11-dev                               # command-line parsing for the msgstore binary
  libgtest-dev libgmock-dev                  # unit and end-to-end tests
  libsqlite3-dev                             # the SQLite peer in bench/ (never linked into msgstore)
  clang-14 libclang-rt-14-dev                # sanitizer presets (asan, tsan) and libFuzzer targets
  python3                                    # end-to-end test drivers
  strace                                     # e2e fault injection (strace -e inject=) in tests/e2e/strace_fault_test.cc
  libboost1.81-dev libboost-json1.81-dev     # the server: Asio (coroutines), Beast (HTTP/WebSocket), JSON
  libtomlplusplus-dev                        # the server's TOML configuration file
  curl nodejs                                # integration tests drive the real server with curl and node clients
  prometheus                                 # promtool checks the /metrics exposition in tests
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

# npm: Debian's npm package, unless the installed Node.js already brings its own npm (NodeSource
# builds do, and they conflict with Debian's npm package).
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
