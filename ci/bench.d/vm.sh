# VM writers alone, from an existing raw image (the Debian-minbase production image), side by
# side with their peers (fixed VHD and OVA: see the end):
#   EC2 stream VMDK: coreos-build vm --format ami_vmdk --as-is  vs  qemu-img convert -O vmdk -o subformat=streamOptimized
#   GCE tar.gz:      coreos-build vm --format gce --as-is       vs  tar --format=oldgnu -S -cf - disk.raw | gzip -6
# --as-is skips the copy, resize and OEM steps, so both sides do the same work.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
W=$BENCH_OUT/vm
rm -rf "$W" && mkdir -p "$W/img" "$W/ours" "$W/peer"
SOURCE_DATE_EPOCH=1700000000 "$BIN/coreos-build" --quiet image --usr "$MINBASE/usr" --output "$W/img" >/dev/null
IMG=$W/img/coreos_production_image.bin
# An EC2 image (OEM ec2) to convert; then disk.raw for GCE: the vm layout, padded to whole GiB.
"$BIN/coreos-build" --quiet vm --format ami --image "$IMG" --output "$W/img" >/dev/null
AMI=$W/img/coreos_production_ami_image.bin
"$BIN/coreos-build" --quiet vm --format qemu --oem gce --image "$IMG" --output "$W/img" >/dev/null
qemu-img convert -O raw "$W/img/coreos_production_qemu_image.img" "$W/img/disk.raw"
size=$(stat -c %s "$W/img/disk.raw")
truncate -s $(( (size + (1<<30) - 1) / (1<<30) * (1<<30) )) "$W/img/disk.raw"
sgdisk -e "$W/img/disk.raw" >/dev/null
echo "image: $(du -h --apparent-size "$AMI" | cut -f1) apparent, $(du -h "$AMI" | cut -f1) data"

compare vm-ec2-vmdk 5 \
  "$BIN/coreos-build --quiet vm --format ami_vmdk --as-is --image $AMI --output $W/ours" \
  "qemu-img convert -O vmdk -o subformat=streamOptimized,adapter_type=lsilogic $AMI $W/peer/ami.vmdk"
compare vm-gce-targz 5 \
  "$BIN/coreos-build --quiet vm --format gce --as-is --image $W/img/disk.raw --output $W/ours" \
  "bash -c 'cd $W/img && tar --format=oldgnu -S -cf - disk.raw | gzip -6 > $W/peer/gce.tar.gz'"

# Fixed VHD (Azure, Hyper-V) from the image: ours appends the footer to a kernel copy of the
# image's data ranges (--as-is: no OEM change, the same work as the peer) and fsyncs it, as
# every artifact; qemu-img writes the same fixed VHD (force_size: the exact size, creator qem2)
# with its convert default cache=unsafe, no flush, so it is also timed with `sync -f` after it.
GOAL=0.5 compare vm-vhd-fixed 5 \
  "$BIN/coreos-build --quiet vm --format hyperv --as-is --image $AMI --output $W/ours" \
  "qemu-img convert -O vpc -o subformat=fixed,force_size $AMI $W/peer/hyperv.vhd"
GOAL=0.5 compare vm-vhd-fixed-synced 5 \
  "$BIN/coreos-build --quiet vm --format hyperv --as-is --image $AMI --output $W/ours" \
  "bash -c 'qemu-img convert -O vpc -o subformat=fixed,force_size $AMI $W/peer/hyperv.vhd && sync -f $W/peer/hyperv.vhd'"
# The same, on a filesystem that shares extents (XFS with reflink, loop-mounted: what a build
# host on XFS or btrfs has). Ours copies the image's data with copy_file_range, which such a
# filesystem turns into a reflink, so no data is copied or flushed; qemu-img copies the bytes
# on any filesystem. For information: the goal above is the ext4 figure.
if command -v mkfs.xfs >/dev/null; then
  X=$BENCH_OUT/vm-xfs.img XM=$BENCH_OUT/vm-xfs
  rm -f "$X" && truncate -s 16G "$X" && mkfs.xfs -q -m reflink=1 "$X" && mkdir -p "$XM"
  mount -o loop "$X" "$XM"  # the loop device goes with the umount (autoclear)
  trap 'umount "$XM" 2>/dev/null; rm -f "$X"' EXIT
  mkdir -p "$XM/ours" "$XM/peer" && cp --sparse=always "$AMI" "$XM/ami.bin"
  GOAL=0.5 compare vm-vhd-fixed-xfs 5 \
    "$BIN/coreos-build --quiet vm --format hyperv --as-is --image $XM/ami.bin --output $XM/ours" \
    "qemu-img convert -O vpc -o subformat=fixed,force_size $XM/ami.bin $XM/peer/hyperv.vhd"
  GOAL=0.5 compare vm-vhd-fixed-xfs-synced 5 \
    "$BIN/coreos-build --quiet vm --format hyperv --as-is --image $XM/ami.bin --output $XM/ours" \
    "bash -c 'qemu-img convert -O vpc -o subformat=fixed,force_size $XM/ami.bin $XM/peer/hyperv.vhd && sync -f $XM/peer/hyperv.vhd'"
  umount "$XM" && rm -f "$X" && trap - EXIT
fi
# OVA: stream VMDK, OVF, SHA-256 manifest, ustar, against qemu-img's stream VMDK + sha256sum +
# tar (CoreOS's _write_ova_bundle with vmdk-convert replaced by qemu-img).
"$BIN/coreos-build" --quiet vm --format vmware_ova --as-is --image "$AMI" --output "$W/img" >/dev/null
tar -xOf "$W/img/coreos_production_vmware_ova.ova" coreos_production_vmware_ova.ovf > "$W/img/template.ovf"
GOAL=0.5 compare vm-ova 3 \
  "$BIN/coreos-build --quiet vm --format vmware_ova --as-is --image $AMI --output $W/ours" \
  "bash -c 'cd $W/peer && qemu-img convert -O vmdk -o subformat=streamOptimized,adapter_type=lsilogic $AMI x_image.vmdk && cp $W/img/template.ovf x.ovf && sha256sum x.ovf x_image.vmdk | sed -E \"s/^([0-9a-f]+)  (.*)/SHA256(\\2)= \\1/\" > x.mf && tar --format=ustar -cf x.ova x.ovf x.mf x_image.vmdk && rm x_image.vmdk'"
ls -l "$W/ours" "$W/peer"
