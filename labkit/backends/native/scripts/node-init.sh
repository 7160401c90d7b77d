#!/bin/bash
# A native node's first process: PID 1 of the node's new PID namespace, in its new mount, UTS,
# IPC and cgroup namespaces and its network namespace. It builds the node's root as kind's node
# image has it, pivot_roots into it and execs pause, which stays PID 1 and reaps orphans.
#   node-init.sh NODE_DIR LAB_DIR PARTS_ROOT     (NODE_DIR holds name, ipv4, ipv6, hosts)
set -euo pipefail
D=$1 LAB=$2 PARTS=$3
n=$(cat "$D/name"); ip4=$(cat "$D/ipv4"); ip6=$(cat "$D/ipv6")
R=$D/rootfs
# The host's /proc is still mounted here: /proc/self/stat, opened by this shell itself (a
# redirection, not a child), starts with this process's pid as the host sees it.
read -r self _ < /proc/self/stat; echo "$self" > "$D/pid.tmp"

mount -t tmpfs -o mode=0755,size=16m rootfs "$R"
mkdir -p "$R"/{usr,etc,var,run,tmp,root,home,proc,sys,dev,opt/cni/bin,opt/labkit/parts,kind,mnt,srv,media}
for l in bin sbin lib lib64; do
  if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$R/$l"
  elif [ -d "/$l" ]; then mkdir -p "$R/$l"; mount --rbind -o ro "/$l" "$R/$l"; fi
done
# /usr and /etc: overlays on the host's; the node's writes go to its own upper dirs. /usr must be
# writable (the controller-manager's flexvolume hostPath, kube-proxy's /lib/modules).
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$D/usr.up,workdir=$D/usr.wk" "$R/usr"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$D/etc.up,workdir=$D/etc.wk" "$R/etc"
# labkit's parts (read-only) and the lab's bin/ (kubelet, kubeadm... as links into the parts)
mount --bind "$PARTS" "$R/opt/labkit/parts"; mount -o remount,bind,ro "$R/opt/labkit/parts"
mount --bind "$LAB/bin" "$R/usr/local/bin"; mount -o remount,bind,ro "$R/usr/local/bin"
# /opt/cni/bin: Debian's plugins, writable (Calico's install-cni copies its own in)
mount -t overlay overlay -o "lowerdir=/usr/lib/cni,upperdir=$D/cni.up,workdir=$D/cni.wk" "$R/opt/cni/bin"
# /var on disk, not tmpfs: cadvisor needs a block device (kind #2524), and containerd's
# overlayfs snapshotter a non-overlay upper.
mount --bind "$D/var" "$R/var"
mount --bind "$D/home" "$R/root"
mount --bind "$D/kind" "$R/kind"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$R/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/tmp"

mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
# cgroups: after `unshare --cgroup` the node's own subtree is each hierarchy's root. Read the
# fstype and super-options after mountinfo's "-" (optional fields move the columns).
mount -t tmpfs -o mode=0755,nosuid,nodev,noexec cgroup "$R/sys/fs/cgroup"
while read -r m t o; do
  b=$(basename "$m"); mkdir -p "$R/sys/fs/cgroup/$b"
  if [ "$t" = cgroup2 ]; then mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup/$b"
  else opts=$(echo "$o" | tr , '\n' | grep -Ev '^(rw|ro)$' | paste -sd,)
       mount -t cgroup -o "nosuid,nodev,noexec,$opts" cgroup "$R/sys/fs/cgroup/$b"; fi
done < <(awk '{ for (i=7; $i!="-"; i++); t=$(i+1); o=$(i+3); if ((t=="cgroup"||t=="cgroup2") && $5 ~ "^/sys/fs/cgroup/") print $5, t, o }' /proc/self/mountinfo)
# kind's fix_cgroup: the kubelet's /kubelet cgroup in every controller, cpuset copied
for c in "$R"/sys/fs/cgroup/*/; do
  case $c in */unified/) continue;; esac
  mkdir -p "$c/kubelet"
  if [ -e "$c/cpuset.cpus" ]; then cat "$c/cpuset.cpus" > "$c/kubelet/cpuset.cpus"; cat "$c/cpuset.mems" > "$c/kubelet/cpuset.mems"; fi
done

# Host-wide sysctls the kubelet sets: shadowed by files holding the kubelet's values, so it reads
# what it wants and writes nothing to the host.
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
          kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  k=${kv%=*}; f=$D/sysctl/${k//\//.}; echo "${kv#*=}" > "$f"; mount --bind "$f" "$R/proc/sys/$k"
done

# /dev as a container's, plus /dev/kmsg (the kubelet's OOM watcher reads it)
mount -t tmpfs -o mode=0755,nosuid,size=64k dev "$R/dev"
mknod -m 666 "$R/dev/null" c 1 3; mknod -m 666 "$R/dev/zero" c 1 5; mknod -m 666 "$R/dev/full" c 1 7
mknod -m 666 "$R/dev/random" c 1 8; mknod -m 666 "$R/dev/urandom" c 1 9; mknod -m 666 "$R/dev/tty" c 5 0
mknod -m 644 "$R/dev/kmsg" c 1 11
mkdir -p "$R/dev/pts" "$R/dev/shm" "$R/dev/mqueue"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,nosuid,noexec devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev,noexec shm "$R/dev/shm"
mount -t mqueue -o nosuid,nodev,noexec mqueue "$R/dev/mqueue"
ln -s /proc/self/fd "$R/dev/fd"; ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
ln -s /dev/null "$R/dev/console"

# Identity, as docker writes it; /etc/hosts also lists the other nodes (no docker DNS here).
hostname "$n"
echo "$n" > "$R/etc/hostname"
{
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n'
  printf 'ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n'
  printf '%s\t%s\n%s\t%s\n' "$ip4" "$n" "$ip6" "$n"
  grep -v "[[:space:]]$n\$" "$D/hosts" || true
} > "$R/etc/hosts"
printf 'nameserver 172.18.0.1\noptions ndots:0\n' > "$R/etc/resolv.conf"   # kind: 127.0.0.11 -> gateway
rm -f "$R/etc/machine-id"; tr -d - < /proc/sys/kernel/random/uuid > "$R/etc/machine-id"
cat /proc/sys/kernel/random/uuid > "$R/kind/product_uuid"; echo kind > "$R/kind/product_name"
for f in /sys/class/dmi/id/product_uuid /sys/devices/virtual/dmi/id/product_uuid; do
  if [ -e "$R$f" ]; then mount -o ro,bind "$R/kind/product_uuid" "$R$f"; fi
done

# containerd and crictl as in kindest/base (without the fuse-overlayfs plugin)
mkdir -p "$R/etc/containerd"
restrict=false
# Without CAP_SYS_RESOURCE nothing may lower oom_score_adj, and runc fails every pod sandbox
# ("can't get final child's PID from pipe: EOF"): kind's rootless setting avoids it.
if (( ! ( 0x$(awk '/^CapEff/{print $2}' /proc/self/status) >> 24 & 1 ) )); then restrict=true; fi
# The settings of kind v0.12.0's node image (kindest/base), without its fuse-overlayfs proxy
# and base runtime spec, which this node has no use for.
cat > "$R/etc/containerd/config.toml" <<TOML
version = 2

[plugins."io.containerd.grpc.v1.cri".containerd]
  discard_unpacked_layers = true
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.test-handler]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "k8s.gcr.io/pause:3.6"
  tolerate_missing_hugepages_controller = true
  restrict_oom_score_adj = $restrict
TOML
printf 'runtime-endpoint: unix:///run/containerd/containerd.sock\n' > "$R/etc/crictl.yaml"
mkdir -p "$R/etc/default"; echo 'KUBELET_EXTRA_ARGS=--fail-swap-on=false' > "$R/etc/default/kubelet"

mv "$D/pid.tmp" "$D/pid"
cd "$R"; mkdir -p .oldroot
pivot_root . .oldroot
umount -l /.oldroot; rmdir /.oldroot
mount --make-rshared /
cd /
exec /usr/local/bin/pause
