# The live ISO from an existing production image (the Debian-minbase one), side by side with
# xorriso over the same files staged in a folder, as an ISO build script would do it:
#   ours: coreos-build vm --format iso --image IMG   (cuts USR-A, hashes it for dm-verity, makes
#         both GRUB images and the EFI FAT image, writes the hybrid ISO, fsyncs it)
#   peer: cp -r of the ISO's files (taken from our ISO) into a fresh folder, then
#         xorriso -as mkisofs with the same El Torito entries and hybrid GPT, then sync of the
#         output (ours is synced before it gets its final name).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
W=$BENCH_OUT/live
rm -rf "$W" && mkdir -p "$W/img" "$W/ours" "$W/peer"
export SOURCE_DATE_EPOCH=1700000000
# The minbase /usr has no kernel: the sample OS's boot/ (kernel, initramfs) joins a linked copy.
COREOS_BIN_DIR=$BIN ci/sample-os "$PWD/.cache/sample-os" >/dev/null
cp -al "$MINBASE/usr" "$W/usr"
mkdir -p "$W/usr/boot" && cp -r "$PWD/.cache/sample-os/usr/boot/." "$W/usr/boot/"
"$BIN/coreos-build" --quiet image --usr "$W/usr" --output "$W/img" >/dev/null
IMG=$W/img/coreos_production_image.bin
"$BIN/coreos-build" --quiet vm --format iso --image "$IMG" --output "$W/ours" >/dev/null
ISO=$W/ours/coreos_production_iso_image.iso
# The peer's inputs: our ISO's files, and GRUB's MBR for the hybrid layout.
xorriso -osirrox on -indev "$ISO" -extract / "$W/files" >/dev/null 2>&1
chmod -R u+w "$W/files"
rm "$W/files/BOOT/BOOT.CAT" # xorriso writes its own catalog
cp /usr/lib/grub/i386-pc/boot_hybrid.img "$W/boot_hybrid.img"
echo "ISO: $(du -h --apparent-size "$ISO" | cut -f1); live USR archive $(du -h "$W/files/COREOS/USR.IMG" | cut -f1)"

GOAL=0.5 compare live-iso 5 \
  "$BIN/coreos-build --quiet vm --format iso --image $IMG --output $W/ours" \
  "bash -c 'rm -rf $W/stage && cp -r $W/files $W/stage && xorriso -as mkisofs -quiet -o $W/peer/live.iso -V COREOS_LIVE \
     -b BOOT/ELTORITO.IMG -c BOOT/BOOT.CAT -no-emul-boot -boot-load-size 4 -boot-info-table --grub2-boot-info \
     --grub2-mbr $W/boot_hybrid.img -eltorito-alt-boot -e BOOT/EFIBOOT.IMG -no-emul-boot \
     -efi-boot-part --efi-boot-image $W/stage && sync $W/peer/live.iso'"
ls -l "$W/ours" "$W/peer"
