# Release: `coreos-build release` (image, parallel bzip2, DIGESTS, bmap, signatures) from a
# Debian minbase /usr against the stock pipeline (reference-build.sh + lbzip2 -9 -n 2 +
# md5/sha1/sha512 sums + gpg --detach-sign + gpg --clearsign). Goal: at most 0.5x, with the
# compressed image at most 1.01x the size lbzip2 -9 gives (bzip2 -9's size is shown too). Also the compressor alone against
# lbzip2 -9 -n 2 on the same raw image. PEERS overrides the peers' folder (../shared/bench).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
peers=${PEERS:-../shared/bench}
[ -x "$peers/reference-build.sh" ] || { echo "release: peers not found in $peers (set PEERS)" >&2; exit 1; }
peers=$(cd "$peers" && pwd)
out=$BENCH_OUT/release
rm -rf "$out"; mkdir -p "$out"
export SOURCE_DATE_EPOCH=1700000000
"$BIN/coreos-build" -q keygen --output "$out/key" >/dev/null
export GNUPGHOME=$out/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg -q --batch --passphrase '' --quick-gen-key 'Bench <bench@example.com>' ed25519 sign,cert never
cat > "$out/peer.sh" <<PEER
#!/bin/bash
set -euo pipefail
cd "$out/peer"
"$peers/reference-build.sh" "$MINBASE/usr" coreos_production_image.bin
lbzip2 -9 -n 2 -k -f coreos_production_image.bin
f=coreos_production_image.bin.bz2
{ echo '# MD5 HASH'; md5sum \$f; echo '# SHA1 HASH'; sha1sum \$f; echo '# SHA512 HASH'; sha512sum \$f; } > \$f.DIGESTS
gpg -q --batch --yes --detach-sign \$f
gpg -q --batch --yes --clearsign \$f.DIGESTS
PEER
chmod +x "$out/peer.sh"
mkdir -p "$out/peer"

GOAL=0.5 compare release "${RUNS:-3}" \
  "$BIN/coreos-build -q release --usr $MINBASE/usr --output $out/ours --version 1.0.0 --signing-key $out/key/signing-key.asc --no-oem" \
  "$out/peer.sh" "rm -rf $out/ours; sync"

# The release with its five per-OEM images (the peer makes none); for information.
/usr/bin/time -f '%e s, %M KiB peak RSS' -o "$out/oem.time" "$BIN/coreos-build" -q release --usr "$MINBASE/usr" \
  --output "$out/oems" --version 1.0.0 --signing-key "$out/key/signing-key.asc"
echo "release with 5 OEM images: $(cat "$out/oem.time")"

# Sizes, on the same raw image (the peer's, already built).
raw=$out/peer/coreos_production_image.bin
ours=$(stat -c %s "$out/ours/amd64-usr/1.0.0/coreos_production_image.bin.bz2")
"$BIN/coreos-build" -q release --from-image "$raw" --no-oem --version 1.0.0 --output "$out/same" >/dev/null 2>&1
same=$(stat -c %s "$out/same/amd64-usr/1.0.0/coreos_production_image.bin.bz2")
ref=$(bzip2 -9 -c "$raw" | wc -c)
lb=$(stat -c %s "$raw.bz2")
python3 -c "print(f'size on the same raw image: ours {$same} B, bzip2 -9 {$ref} B, lbzip2 -9 {$lb} B; ratio to lbzip2 -9 {$same/$lb:.4f} (goal <= 1.01), to bzip2 -9 {$same/$ref:.4f}; our own image: {$ours} B')"

compare compress "${RUNS:-3}" \
  "$BIN/coreos-build -q release --from-image $raw --no-oem --version 1.0.0 --output $out/c" \
  "lbzip2 -9 -n 2 -c $raw" "rm -rf $out/c"
rm -rf "$out"
