# ext4 writer: `coreos-build mkfs ext4` against `mkfs.ext4 -d`, same tree, same size, into a
# fresh file each run; then the peak RSS of ours.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
out=$BENCH_OUT/ext4
mkdir -p "$out"
export SOURCE_DATE_EPOCH=1700000000
GOAL=0.5 compare ext4 10 \
  "$BIN/coreos-build -q mkfs ext4 --source $MINBASE/usr --size 1GiB --output $out/ours.img" \
  "mkfs.ext4 -q -F -b 4096 -O ^metadata_csum_seed,^orphan_file -d $MINBASE/usr $out/peer.img 1G" \
  "rm -f $out/ours.img $out/peer.img"
rm -f "$out/ours.img"
/usr/bin/time -f '%M' -o "$out/rss" "$BIN/coreos-build" -q mkfs ext4 --source "$MINBASE/usr" --size 1GiB --output "$out/ours.img"
echo "ext4: ours peak RSS $(( $(cat "$out/rss") / 1024 )) MiB"
rm -f "$out/ours.img" "$out/peer.img"
