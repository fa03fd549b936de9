#!/usr/bin/env bash
# SSH benchmark: sshfsd against OpenSSH's sshd (internal-sftp, a private
# configuration on a loopback port), the same client and cipher for both.
#
# For each cipher: OpenSSH sftp put and get of a 256 MiB file; then, with
# chacha20-poly1305, sshfs sequential write and read of 256 MiB.  Prints
# throughput, the server's CPU time per MiB (user + system, read from
# /proc; for sshd including its per-connection processes) and the ratios
# sshfsd / sshd.  sshd serves a directory, sshfsd a littlefs image with
# 4096-byte blocks; both live in $TMPDIR.
#
# Usage: BUILD=build bash bench/bench_ssh.sh   (make bench sets BUILD)
# Environment: BENCH_MB (default 256) sets the transfer size.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-$PWD/build}
MB=${BENCH_MB:-256}
CLK_TCK=$(getconf CLK_TCK)
. bench/lib.sh
bench_init sshfsd-bench-ssh

# CPU clock ticks (user + system) of a process, of its children it has
# waited for (fields 14-17 of /proc/PID/stat) and of its live
# descendants, such as sshd's per-connection processes while an sshfs
# mount keeps them alive.
cpu_ticks() {
    local total child
    total=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat" \
        2>/dev/null || echo 0)
    for child in $(pgrep -P "$1"); do
        total=$((total + $(cpu_ticks "$child")))
    done
    echo "$total"
}

# Setup: the file to transfer, both servers.
head -c $((MB * 1024 * 1024)) /dev/urandom >data.bin
mkdir -p served mnt_sshfsd mnt_sshd
start_sshd
truncate -s $((MB * 2 + 64))M disk.img
"$BUILD/sshfsd-image" format disk.img 4096 >/dev/null
start_sshfsd disk.img

# measure NAME SERVER_PID CMD...: run CMD, print "seconds cpu_seconds".
measure() {
    local pid=$1 t0 t1 c0 c1
    shift
    sync
    c0=$(cpu_ticks "$pid")
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    # sshd reaps its per-connection processes shortly after they exit.
    sleep 0.3
    c1=$(cpu_ticks "$pid")
    echo "$(echo "$t1 - $t0" | bc -l) $(echo "($c1 - $c0) / $CLK_TCK" | bc -l)"
}

results=()
# row OP CIPHER "SECS CPU" "SECS CPU": one line of the table.
row() {
    local op=$1 cipher=$2
    read -r s_sec s_cpu <<<"$3"
    read -r o_sec o_cpu <<<"$4"
    results+=("$(printf '%-12s %-30s %8.1f %8.1f %6.2f %8.2f %8.2f %6.2f' \
        "$op" "$cipher" \
        "$(echo "$MB / $s_sec" | bc -l)" "$(echo "$MB / $o_sec" | bc -l)" \
        "$(echo "$o_sec / $s_sec" | bc -l)" \
        "$(echo "$s_cpu * 1000 / $MB" | bc -l)" \
        "$(echo "$o_cpu * 1000 / $MB" | bc -l)" \
        "$(echo "if ($o_cpu > 0) $s_cpu / $o_cpu else 0" | bc -l)")")
}

for spec in chacha20-poly1305@openssh.com aes128-gcm@openssh.com \
    aes256-gcm@openssh.com "aes128-ctr hmac-sha2-256-etm@openssh.com"; do
    read -r cipher mac <<<"$spec"
    extra=()
    [ -n "${mac:-}" ] && extra=(-o MACs="$mac")
    label=$cipher${mac:+/${mac%%@*}}

    printf 'put %s/data.bin /bench.bin\n' "$work" >put_sshfsd
    printf 'put %s/data.bin %s/served/bench.bin\n' "$work" "$work" \
        >put_sshd
    printf 'get /bench.bin %s/down.bin\nrm /bench.bin\n' "$work" \
        >get_sshfsd
    printf 'get %s/served/bench.bin %s/down.bin\n' "$work" "$work" \
        >get_sshd

    s=$(measure "$sshfsd_pid" sftp_run "$sshfsd_port" "$cipher" put_sshfsd \
        "${extra[@]}")
    o=$(measure "$sshd_pid" sftp_run "$sshd_port" "$cipher" put_sshd \
        "${extra[@]}")
    row "sftp put" "$label" "$s" "$o"
    s=$(measure "$sshfsd_pid" sftp_run "$sshfsd_port" "$cipher" get_sshfsd \
        "${extra[@]}")
    cmp -s data.bin down.bin || { echo "sshfsd get: data differs" >&2; exit 1; }
    o=$(measure "$sshd_pid" sftp_run "$sshd_port" "$cipher" get_sshd \
        "${extra[@]}")
    cmp -s data.bin down.bin || { echo "sshd get: data differs" >&2; exit 1; }
    row "sftp get" "$label" "$s" "$o"
    rm -f down.bin served/bench.bin
done

# sshfs: sequential write, then (after a fresh mount, so that no page
# cache helps) sequential read, with chacha20-poly1305.
dd_write() { dd if="$work/data.bin" of="$1" bs=1M conv=fsync status=none; }
dd_read() { dd if="$1" of=/dev/null bs=1M status=none; }

sshfs_mount "$sshfsd_port" / mnt_sshfsd
sshfs_mount "$sshd_port" "$work/served" mnt_sshd
s=$(measure "$sshfsd_pid" dd_write mnt_sshfsd/seq.bin)
o=$(measure "$sshd_pid" dd_write mnt_sshd/seq.bin)
fusermount3 -u mnt_sshfsd
fusermount3 -u mnt_sshd
row "sshfs write" chacha20-poly1305@openssh.com "$s" "$o"
sshfs_mount "$sshfsd_port" / mnt_sshfsd
sshfs_mount "$sshd_port" "$work/served" mnt_sshd
s=$(measure "$sshfsd_pid" dd_read mnt_sshfsd/seq.bin)
o=$(measure "$sshd_pid" dd_read mnt_sshd/seq.bin)
fusermount3 -u mnt_sshfsd
fusermount3 -u mnt_sshd
row "sshfs read" chacha20-poly1305@openssh.com "$s" "$o"

echo "== SSH: sshfsd vs OpenSSH $("$SSHD" -V 2>&1 | head -1 | cut -d, -f1)" \
    "($(nproc) cores, $MB MiB, files in ${TMPDIR:-/tmp})"
printf '%-12s %-30s %8s %8s %6s %8s %8s %6s\n' operation cipher \
    "sshfsd" "sshd" "speed" "sshfsd" "sshd" "CPU"
printf '%-12s %-30s %8s %8s %6s %8s %8s %6s\n' "" "" "MiB/s" "MiB/s" \
    "ratio" "ms/MiB" "ms/MiB" "ratio"
printf '%s\n' "${results[@]}"
echo "speed ratio: sshfsd throughput / sshd throughput (above 1: sshfsd" \
    "faster); CPU ratio: sshfsd CPU / sshd CPU (below 1: sshfsd cheaper)"
