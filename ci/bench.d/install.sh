# Install: `coreos-install` from a local nginx mirror onto a loop device, against what the
# original coreos-install did (`curl | bzip2 -cd | dd bs=1M oflag=direct`) and against the
# same with lbzip2. Goal: at most 0.5x the first and 0.75x the second, peak RSS < 64 MiB.
# The mirror is made by `coreos-build release` from $MINBASE/usr.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
out=$BENCH_OUT/install
rm -rf "$out"; mkdir -p "$out"
export SOURCE_DATE_EPOCH=1700000000
"$BIN/coreos-build" -q keygen --output "$out/key" >/dev/null
if ! "$BIN/coreos-build" -q release --usr "$MINBASE/usr" --output "$out/mirror" --version 1.0.0 \
    --signing-key "$out/key/signing-key.asc" --no-oem >"$out/release.log" 2>&1; then
  echo "install: SKIPPED: coreos-build release failed:"; tail -5 "$out/release.log"; exit 0
fi
image=$out/mirror/amd64-usr/1.0.0/coreos_production_image.bin.bz2
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$out/nginx"
cat > "$out/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $out/nginx/pid; error_log $out/nginx/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path $out/nginx/b; proxy_temp_path $out/nginx/p;
       fastcgi_temp_path $out/nginx/f; uwsgi_temp_path $out/nginx/u; scgi_temp_path $out/nginx/s;
       types { } default_type application/octet-stream; sendfile on;
       server { listen 127.0.0.1:$port; root $out/mirror; } }
CONF
nginx -p "$out/nginx" -c "$out/nginx/nginx.conf" & nginx_pid=$!
# The raw size, from the image itself, plus room for the backup GPT to move.
raw_bytes=$(bzip2 -dc "$image" | wc -c)
truncate -s $((raw_bytes + (64 << 20))) "$out/disk.img"
loop=$(losetup --find --show --partscan "$out/disk.img")
cleanup() { losetup -d "$loop" 2>/dev/null || true; kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; rm -rf "$out"; }
trap cleanup EXIT
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/amd64-usr/1.0.0/version.txt" && break; sleep 0.1; done
url=http://127.0.0.1:$port/amd64-usr/1.0.0/coreos_production_image.bin.bz2
ours="$BIN/coreos-install -d $loop -b http://127.0.0.1:$port/amd64-usr -V 1.0.0 -k $out/key/signing-key.pub.asc"
echo "image: $(stat -c %s "$image") bytes compressed, $raw_bytes bytes raw"

compare install-vs-bzip2 "${RUNS:-3}" "$ours" \
  "bash -c 'curl -sf $url | bzip2 -cd | dd of=$loop bs=1M oflag=direct status=none'" "sync"
compare install-vs-lbzip2 "${RUNS:-3}" "$ours" \
  "bash -c 'curl -sf $url | lbzip2 -d -n 2 | dd of=$loop bs=1M oflag=direct status=none'" "sync"

/usr/bin/time -v $ours >/dev/null 2>"$out/time.txt"
rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/time.txt")
echo "install: peak RSS ${rss} KiB ($((rss / 1024)) MiB; goal < 64 MiB)"
