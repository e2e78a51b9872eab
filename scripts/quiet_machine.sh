#!/usr/bin/env bash
# The load benchmark's many-core figures in one run on a quiet machine
# (BENCHMARKS.md's headline table): messages like for like, the server on
# 1 to 8 worker threads, memory and revocation among 100 000 idle sockets,
# a reconnect storm of 20 000 clients, handshakes per credential.
#
# The machine may have no toolchain and no network, so the benchmark
# travels as a release binary (it carries its keys) with a redis-server
# for the storm's Redis row. Prepare on the development machine:
#
#   cargo bench --bench load --no-run
#   mkdir -p quiet && echo quiet/ >> .git/info/exclude
#   cp "$(ls -t target/release/deps/load-* | grep -v '\.d$' | head -1)" quiet/load
#   cp "$(command -v redis-server)" quiet/   # optional: the storm's Redis row
#
# then run there, with `quiet` carried:
#
#   bash scripts/quiet_machine.sh quiet "$OUT"
#
# It writes one table a part under OUT, and the machine beside them. About
# six minutes on 16 CPUs; `ROUNDS` (default 5) trades time for certainty.
set -uo pipefail

binaries=${1:?the folder holding the load binary}
out=${2:?the folder for the tables}
rounds=${ROUNDS:-5}
mkdir -p "$out"
export PATH="$(cd "$binaries" && pwd):$PATH"

{
    echo "date: $(date -u +%FT%TZ)"
    echo "cpus: $(nproc) online $(cat /sys/devices/system/cpu/online)"
    grep -m1 'model name' /proc/cpuinfo
    grep MemTotal /proc/meminfo
    uname -r
    # A reconnect storm needs room in the accept queue, 100 000 sockets
    # need the files; both need root, and the tables say what they got.
    sysctl -w net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535 2>&1
    ulimit -Hn 1048576 2>&1 && ulimit -n 1048576 2>&1
    echo "open files: $(ulimit -n)"
    echo "somaxconn: $(cat /proc/sys/net/core/somaxconn)"
} > "$out/machine.txt" 2>&1
ulimit -Hn 1048576 2>/dev/null
ulimit -n 1048576 2>/dev/null

for part in messages threads memory revocation reconnect handshakes; do
    started=$(date +%s)
    timeout 300 "$binaries/load" --bench --part "$part" --rounds "$rounds" \
        > "$out/$part.txt" 2>&1
    echo "$part: exit $?, $(($(date +%s) - started)) s" >> "$out/machine.txt"
done
cat "$out/machine.txt"
