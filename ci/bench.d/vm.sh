# VM writers alone, from an existing raw image (the Debian-minbase production image), side by
# side with their peers:
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
ls -l "$W/ours" "$W/peer"
