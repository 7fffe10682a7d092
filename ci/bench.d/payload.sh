# Update payload: `coreos-build payload` of an image built from the Debian minbase /usr.
# - write time against lbzip2 -9 -n 2 of the same USR-A partition (both on every core);
# - size against bzip2 -9 of that partition (goal: at most 1.02x);
# - verify + apply (payload/examples/payload-apply, the library the updater links) onto a
#   loop device, against `bzip2 -dc coreos_production_update.bin.bz2 | dd` onto the same
#   device (goal for the updater's apply: at most 0.5x); the apply pass alone is printed too.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
out=$BENCH_OUT/payload
rm -rf "$out"; mkdir -p "$out"
export SOURCE_DATE_EPOCH=1700000000
cargo build --release --quiet -p payload --example payload-apply
apply_bin=$BIN/examples/payload-apply
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
"$BIN/coreos-build" -q image --usr "$out/usr" --output "$out/img" --version 1.0.0 >/dev/null
image=$out/img/coreos_production_image.bin
# USR-A of the base layout: sectors 270336 .. +2097152.
dd if="$image" of="$out/usr.bin" bs=1M skip=132 count=1024 conv=sparse status=none

# Write time against bzip2 -9 (the library delta_generator compresses with; it ran it on
# several threads) and against lbzip2 -9 -n 2 (a faster bzip2 encoder on both cores).
key=$out/key/update-payload-key.pem
compare payload-write-vs-bzip2 "${RUNS:-3}" \
  "$BIN/coreos-build -q payload --image $image --update-key $key --output $out/update.gz" \
  "bash -c 'bzip2 -9 -c $out/usr.bin > $out/usr.bin.bz2'"
compare payload-write-vs-lbzip2 "${RUNS:-3}" \
  "$BIN/coreos-build -q payload --image $image --update-key $key --output $out/update.gz" \
  "lbzip2 -9 -n 2 -c $out/usr.bin"

ref=$(stat -c %s "$out/usr.bin.bz2")
# The payload also carries the kernel, which the partition does not: compare its partition
# blobs too (summed from protoc --decode_raw of the manifest).
python3 - "$out/update.gz" "$ref" <<'PY'
import struct, subprocess, sys
d = open(sys.argv[1], "rb").read()
ref = int(sys.argv[2])
n = struct.unpack(">Q", d[12:20])[0]
t = subprocess.run(["protoc", "--decode_raw"], input=d[20:20 + n], capture_output=True).stdout.decode()
lines = t.splitlines()
blobs = next(int(l.split(": ")[1]) for l in lines if l.startswith("4: "))
kernel, inside = 0, False
for l in lines:
    inside = inside or l == "10 {"
    if inside and l.startswith("    3: "):
        kernel += int(l.split(": ")[1])
    if inside and l == "}":
        break
print(f"payload size: {len(d)} B ({kernel} B of kernel); bzip2 -9 of USR-A {ref} B; "
      f"partition blobs / bzip2 -9 {(blobs - kernel) / ref:.4f} (goal <= 1.02), "
      f"whole payload / bzip2 -9 {len(d) / ref:.4f}")
PY

"$BIN/coreos-build" -q release --from-image "$image" --version 1.0.0 --no-oem --output "$out/mirror" \
  --update-key "$key" >/dev/null 2>&1
bz2=$out/mirror/amd64-usr/1.0.0/coreos_production_update.bin.bz2
truncate -s 1G "$out/slot.img"
loop=$(losetup --find --show "$out/slot.img")
trap 'losetup -d "$loop" 2>/dev/null || true; rm -rf "$out"' EXIT

compare payload-apply "${RUNS:-3}" \
  "$apply_bin $out/update.gz $out/key/update-payload-key.pub.pem $loop" \
  "bash -c 'bzip2 -dc $bz2 | dd of=$loop bs=1M conv=fsync status=none'" "sync"
for _ in 1 2 3; do "$apply_bin" "$out/update.gz" "$out/key/update-payload-key.pub.pem" "$loop"; done \
  | sort -t' ' -k5 -n | sed -n 2p | sed 's/^/payload passes (median run by apply time): /'
cmp <(head -c $((1 << 30)) "$loop") "$out/usr.bin" && echo "payload-apply: the slot equals USR-A"
