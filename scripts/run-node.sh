#!/usr/bin/env bash
# run-node.sh: the README's first command. Installs the Debian packages that are
# missing (scripts/deps.txt), builds qpc-server and qpc (build/), and starts a node with
# the embedded defaults: data directory ~/.local/share/quicprochat/server, identity made
# on first start, SQLite queues, mDNS on, clients on 0.0.0.0:7000, metrics on
# 127.0.0.1:9464. The node prints its peer id, its address and the `qpc` command to
# connect. Arguments are passed to qpc-server (`scripts/run-node.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target qpc-server qpc >/dev/null
exec build/qpc-server "$@"
