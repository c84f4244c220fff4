#!/usr/bin/env bash
# A single-node SLURM (Debian's slurm-wlm + munge) on this host, for the `slurm` test:
# installs the packages if missing, writes a minimal slurm.conf (one node, this host,
# its real CPU count), starts munged, slurmctld and slurmd, and waits until the node
# is idle. `deploy/slurm-single-node.sh stop` stops the three daemons it started.
set -euo pipefail
STATE=/tmp/chaos-slurm
if [[ "${1:-start}" == "stop" ]]; then
    for daemon in slurmd slurmctld munged; do
        # munged.pid is pgrep's list (below), which may hold more than one pid
        [[ -f $STATE/$daemon.pid ]] && xargs -r kill < "$STATE/$daemon.pid" 2>/dev/null || true
    done
    exit 0
fi
if command -v sinfo >/dev/null && sinfo -h -o %T 2>/dev/null | grep -q -E '^(idle|mixed)'; then
    sinfo; exit 0  # already up (started earlier by this script)
fi
if ! command -v slurmctld >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
mkdir -p $STATE/spool/ctld $STATE/spool/d /etc/slurm /run/munge /var/log/munge /var/lib/munge /etc/munge
chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
[[ -f /etc/munge/munge.key ]] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=chaos
SlurmctldHost=$HOST
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ReturnToService=2
KillWait=5
MpiDefault=none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
runuser -u munge -- /usr/sbin/munged --pid-file=$STATE/munged.pid 2>/dev/null || /usr/sbin/munged -f
pgrep -x munged > $STATE/munged.pid || true
/usr/sbin/slurmctld
/usr/sbin/slurmd
for _ in $(seq 1 60); do
    if sinfo -h -o %T 2>/dev/null | grep -q -E '^(idle|mixed)'; then sinfo; exit 0; fi
    sleep 1
done
echo "SLURM did not come up within 60 s:" >&2
sinfo >&2 || true
tail -20 $STATE/slurmctld.log $STATE/slurmd.log >&2 || true
exit 1
