# Image builder: `coreos-build image` from a Debian minbase /usr against systemd-repart and the
# stock-tool pipeline (sgdisk, mkfs.vfat, mkfs.ext4 -d, dd), one hyperfine run, fresh output
# each time. Goals: at most 0.5x repart's median, 0.25x the stock pipeline's.
# The peers live beside the repository (../shared/bench); PEERS overrides that folder.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
peers=${PEERS:-../shared/bench}
[ -x "$peers/repart-build.sh" ] && [ -x "$peers/reference-build.sh" ] || { echo "image: peers not found in $peers (set PEERS)" >&2; exit 1; }
peers=$(cd "$peers" && pwd)
out=$BENCH_OUT/image
mkdir -p "$out"
export SOURCE_DATE_EPOCH=1700000000
json=$out/image.json
hyperfine --style basic --runs "${RUNS:-5}" --warmup 1 \
  --prepare "rm -rf $out/ours $out/repart.bin $out/reference.bin; sync" \
  --export-json "$json" \
  -n ours "$BIN/coreos-build -q image --usr $MINBASE/usr --output $out/ours --oem gce" \
  -n repart "$peers/repart-build.sh $MINBASE/usr $out/repart.bin" \
  -n reference "$peers/reference-build.sh $MINBASE/usr $out/reference.bin" >/dev/null
python3 - "$json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
o = r["ours"]["median"]
for peer, goal in (("repart", 0.5), ("reference", 0.25)):
    p = r[peer]["median"]
    print(f"image: ours median {o:.2f} s, {peer} median {p:.2f} s, ratio {o/p:.2f} (goal <= {goal})")
PY
/usr/bin/time -f '%M' -o "$out/rss" "$BIN/coreos-build" -q image --usr "$MINBASE/usr" --output "$out/rss-run" --oem gce >/dev/null
echo "image: ours peak RSS $(( $(cat "$out/rss") / 1024 )) MiB"
rm -rf "$out/ours" "$out/rss-run" "$out/repart.bin" "$out/reference.bin"
