#!/bin/busybox sh
# /init of the vfio test-bed guest (runs as PID 1 from the initramfs).
#
# 1. mounts /proc, /sys, /dev and loads the mdev sample modules;
# 2. binds QEMU's edu device (1234:11e8) and NVMe controller (1b36:0010) to vfio-pci;
# 3. mounts the host root (9p tag "hostroot", read-only) at /host as a
#    copy-on-write snapshot (overlayfs with a tmpfs upper layer), and the shared
#    directory read-write (tag "share") at its own absolute path in it;
# 4. runs /vm/cmd.sh (written per run by the host) chrooted into /host, with
#    stdout and stderr on the virtio ports vfio.stdout / vfio.stderr;
# 5. writes "exit=<status>" to vfio.status, syncs and powers off.
# Any failure of the bed itself is reported as "bed-error=<message>".

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "vfio-vm: $*" > /dev/console; }

# A virtio-serial port by its QEMU name, e.g. vfio.status -> /dev/vport1p3.
port() {
	for p in /sys/class/virtio-ports/*; do
		if [ "$(cat "$p/name" 2>/dev/null)" = "$1" ]; then
			echo "/dev/${p##*/}"
			return 0
		fi
	done
	return 1
}

STATUS=$(port vfio.status) || STATUS=/dev/console

finish() {
	sync
	umount "/host$VFIO_VM_SHARE" 2>/dev/null
	sync
	poweroff -f
	sleep 5
}

bed_error() {
	say "bed error: $*"
	echo "bed-error=$*" > "$STATUS"
	finish
}

if grep -q 'vfio_vm.probe=1' /proc/cmdline; then
	echo "probe=ok" > "$STATUS"
	finish
fi

[ -r /vm/env ] || bed_error "no /vm/env in the initramfs"
. /vm/env

# --- modules -------------------------------------------------------------
for m in $VFIO_VM_MODULES; do
	modprobe "$m" || bed_error "modprobe $m failed"
done

# --- edu and the NVMe controller -> vfio-pci ---------------------------------
# The kernel's nvme driver is a module that nothing loads at boot, so the
# controller waits for vfio-pci; a test may rebind it to nvme (modprobe nvme).
for d in /sys/bus/pci/devices/*; do
	id="$(cat "$d/vendor"):$(cat "$d/device")"
	case "$id" in
	0x1234:0x11e8) what=edu ;;
	0x1b36:0x0010) what=nvme ;;
	*) continue ;;
	esac
	echo vfio-pci > "$d/driver_override" || bed_error "driver_override on ${d##*/}"
	echo "${d##*/}" > /sys/bus/pci/drivers_probe 2>/dev/null
	[ -e "$d/driver" ] || bed_error "$what ${d##*/} did not bind to vfio-pci"
done

# --- filesystems -------------------------------------------------------------
OPTS=trans=virtio,version=9p2000.L,msize=512000
# The host root, read-only over 9p, under a tmpfs upper layer: a copy-on-write
# snapshot that the command may change freely without touching the host.
mkdir -p /lower /cow /host
mount -t 9p -o "$OPTS,ro,cache=loose" hostroot /lower || bed_error "cannot mount the host root over 9p"
mount -t tmpfs -o mode=755 tmpfs /cow || bed_error "mount the snapshot's tmpfs"
mkdir -p /cow/upper /cow/work
mount -t overlay -o lowerdir=/lower,upperdir=/cow/upper,workdir=/cow/work overlay /host || bed_error "cannot mount the copy-on-write host root (overlayfs)"
mount -t proc proc /host/proc || bed_error "mount /host/proc"
mount -t sysfs sysfs /host/sys || bed_error "mount /host/sys"
mount -t devtmpfs devtmpfs /host/dev || bed_error "mount /host/dev"
mount -t tmpfs -o mode=1777 tmpfs /host/tmp || bed_error "mount /host/tmp"
mount -t tmpfs -o mode=755 tmpfs /host/run || bed_error "mount /host/run"
mkdir -p /host/dev/shm /host/dev/hugepages /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
mount -t hugetlbfs hugetlbfs /host/dev/hugepages
# The share's path may lie under a directory that is now a guest tmpfs.
mkdir -p "/host$VFIO_VM_SHARE" 2>/dev/null
mount -t 9p -o "$OPTS,cache=$VFIO_VM_SHARE_CACHE" share "/host$VFIO_VM_SHARE" || bed_error "cannot mount $VFIO_VM_SHARE over 9p"

# The guest kernel's modules, where the command's modprobe looks (the host's
# /lib/modules has none for this kernel).
KREL=$(uname -r)
if [ -d "/lib/modules/$KREL" ]; then
	mkdir -p "/host/lib/modules/$KREL"
	mount -o bind "/lib/modules/$KREL" "/host/lib/modules/$KREL" || bed_error "bind-mount /lib/modules/$KREL"
fi

mkdir -p /host/run/vfio-vm /host/tmp/home
cp /vm/cmd.sh /host/run/vfio-vm/cmd.sh
touch /host/run/vfio-vm/ready

OUT=$(port vfio.stdout) || bed_error "no vfio.stdout port"
ERR=$(port vfio.stderr) || bed_error "no vfio.stderr port"
say "ready"

chroot /host /bin/sh /run/vfio-vm/cmd.sh < /dev/null > "$OUT" 2> "$ERR"
rc=$?
echo "exit=$rc" > "$STATUS"
finish
