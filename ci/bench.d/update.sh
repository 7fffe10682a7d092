# Update: `coreos-update apply` of a local payload into USR-B of a loop device, against what the
# SDK's raw update did (`bzip2 -dc coreos_production_update.bin.bz2 | dd` into the same
# partition). Goal: at most 0.5x. Also the payload's size against `bzip2 -9` of the partition
# (goal: at most 1.02x). Image, payload and .bin.bz2 are made from $MINBASE/usr.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
out=$BENCH_OUT/update
rm -rf "$out"; mkdir -p "$out"
export SOURCE_DATE_EPOCH=1700000000
"$BIN/coreos-build" -q keygen --output "$out/key" >/dev/null
# The minbase /usr plus a Debian kernel (minbase has none; a payload carries one).
cp -a "$MINBASE/usr" "$out/usr"
mkdir -p "$out/usr/boot"
deb=$(ls "$PWD"/.cache/debs/linux-image-*-amd64_*.deb 2>/dev/null | head -1)
if [ -n "$deb" ]; then
  dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards './boot/vmlinuz-*' > "$out/usr/boot/vmlinuz"
else  # no Debian kernel cached: incompressible bytes of a kernel's size
  head -c 8000000 /dev/urandom > "$out/usr/boot/vmlinuz"
fi
"$BIN/coreos-build" -q image --usr "$out/usr" --output "$out/image" --version 1.0.0 >/dev/null
kernel_bytes=$(stat -c %s "$out/usr/boot/vmlinuz")
rm -rf "$out/usr"
image=$out/image/coreos_production_image.bin
if ! "$BIN/coreos-build" -q payload --image "$image" --update-key "$out/key/update-payload-key.pem" \
    --output "$out/coreos_production_update.gz" >"$out/payload.log" 2>&1; then
  echo "update: SKIPPED: coreos-build payload failed:"; tail -5 "$out/payload.log"; exit 0
fi
payload=$out/coreos_production_update.gz
# USR-A's bytes, as the SDK's coreos_production_update.bin.bz2 held them.
first=$(sgdisk -i 3 "$image" | awk '/First sector/ {print $3}')
size=$(sgdisk -i 3 "$image" | awk '/Partition size/ {print $3}')
dd if="$image" of="$out/usr.bin" bs=512 skip="$first" count="$size" status=none
bzip2 -9 -c "$out/usr.bin" >"$out/coreos_production_update.bin.bz2"
rm -f "$out/usr.bin"
bz2=$out/coreos_production_update.bin.bz2
# The payload also carries the kernel (a compressed bzImage, stored as is), which the partition
# does not hold: the fair size is bzip2 -9 of the partition plus the kernel's bytes.
echo "payload $(stat -c %s "$payload") bytes, bzip2 -9 of the partition $(stat -c %s "$bz2") bytes" \
  "+ kernel $kernel_bytes bytes: ratio $(python3 -c "print(f'{$(stat -c %s "$payload")/($(stat -c %s "$bz2")+$kernel_bytes):.4f}')")" \
  "(to the partition alone $(python3 -c "print(f'{$(stat -c %s "$payload")/$(stat -c %s "$bz2"):.3f}')"); goal <= 1.02)"

loop=$(losetup --find --show --partscan "$image")
partx -a "$loop" 2>/dev/null || true
cleanup() { losetup -d "$loop" 2>/dev/null || true; rm -rf "$out"; }
trap cleanup EXIT
# Every run writes USR-B: USR-A is put back on top first (and both commands get the same prep).
prep="$BIN/coreos-update mark-good -d $loop --slot a"
GOAL=0.5 compare update-vs-bzip2-dd "${RUNS:-3}" \
  "$BIN/coreos-update apply -d $loop -f $payload -k $out/key/update-payload-key.pub.pem" \
  "bash -c 'bzip2 -dc $bz2 | dd of=${loop}p4 bs=1M oflag=direct status=none'" "$prep"
