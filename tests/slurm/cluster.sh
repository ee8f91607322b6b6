#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests/slurm/check.sh (and for trying
# `cargo xtask sweep --launcher slurm` by hand): munged, slurmctld and slurmd, all state,
# logs and pid files in one folder, the config passed by SLURM_CONF rather than written to
# /etc/slurm. Needs root (the daemons run as root, and munged as the munge user).
#
#   tests/slurm/cluster.sh up [DIR]     install if missing, start, wait until the node is idle
#   tests/slurm/cluster.sh down [DIR]   cancel jobs, stop this folder's daemons by pid
#
# After `up`, `export SLURM_CONF=DIR/slurm.conf` (printed) points sbatch, squeue, scontrol and
# scancel at the cluster. No systemd, no cgroups (proctrack/linuxproc, task/none), no
# accounting daemon. Pitfalls met on the way: /run/munge must exist and belong to munge; a job
# that depends on a failed one stays pending forever unless kill_invalid_depend; slurmd hangs
# on shutdown while a slurmstepd is still alive.
set -euo pipefail

action="${1:-}"
dir="${2:-/tmp/gpt-mini-slurm}"
conf="$dir/slurm.conf"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install() {
    local need=()
    command -v sbatch >/dev/null 2>&1 || need+=(slurm-client)
    command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld)
    command -v slurmd >/dev/null 2>&1 || need+=(slurmd)
    command -v munged >/dev/null 2>&1 || need+=(munge)
    if [ "${#need[@]}" -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get install -y -qq --no-install-recommends "${need[@]}" \
            || { as_root apt-get update -qq \
                && as_root apt-get install -y -qq --no-install-recommends "${need[@]}"; }
    fi
}

wait_for() { # SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2
    shift 2
    for _ in $(seq $((limit * 10))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "cluster: $what did not happen within ${limit} s" >&2
    return 1
}

node_idle() {
    [ "$(SLURM_CONF="$conf" sinfo -h -o %T 2>/dev/null | tr -d '*')" = idle ]
}

up() {
    install
    mkdir -p "$dir/state" "$dir/spool"
    # The node line as slurmd sees this machine (CPUs, sockets, cores, memory).
    local node
    node=$(slurmd -C | head -n1)
    local host
    host=$(hostname -s)
    cat >"$conf" <<EOF
ClusterName=gptmini
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
DependencyParameters=kill_invalid_depend
MinJobAge=600
$node
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    # munged: its key comes with the package; its socket folder must belong to munge.
    if [ ! -s /etc/munge/munge.key ]; then
        as_root mungekey --create --force
        as_root chown munge:munge /etc/munge/munge.key
    fi
    as_root mkdir -p /run/munge
    as_root chown munge:munge /run/munge
    # A munged already answering (the machine's own) is used, and left running by `down`.
    # Its pid file goes where the munge user may write whatever the folder's permissions; the
    # file in our folder says that this cluster started it, so `down` stops it.
    if ! munge -n >/dev/null 2>&1; then
        as_root runuser -u munge -- munged --pid-file=/run/munge/gpt-mini-munged.pid
        echo /run/munge/gpt-mini-munged.pid >"$dir/munged.pidfile"
        wait_for 10 "munged answering" munge -n
    fi
    as_root slurmctld -f "$conf"
    as_root slurmd -f "$conf"
    wait_for 30 "the node becoming idle" node_idle
    echo "cluster: up, node idle; export SLURM_CONF=$conf"
}

stop_pid_file() { # FILE
    [ -s "$1" ] || return 0
    local pid
    pid=$(cat "$1")
    as_root kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    as_root kill -9 "$pid" 2>/dev/null || true
}

down() {
    [ -f "$conf" ] || { echo "cluster: no cluster in $dir"; return 0; }
    # Jobs first, and their step daemons gone, or slurmd hangs on the way out.
    SLURM_CONF="$conf" scancel --full --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 100); do
        pgrep -x slurmstepd >/dev/null || break
        sleep 0.1
    done
    stop_pid_file "$dir/slurmd.pid"
    stop_pid_file "$dir/slurmctld.pid"
    if [ -s "$dir/munged.pidfile" ]; then
        stop_pid_file "$(cat "$dir/munged.pidfile")"
        rm -f "$dir/munged.pidfile"
    fi
    echo "cluster: down"
}

case "$action" in
    up) up ;;
    down) down ;;
    *)
        echo "usage: $0 up|down [DIR]" >&2
        exit 2
        ;;
esac
