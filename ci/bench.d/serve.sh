# The update service under load: `coreos-build serve` answering update checks (an `ok` reply
# with the payload's hashes, and `noupdate`) from wrk, a bounded load generator on 127.0.0.1
# sharing the machine's two cores. Goals (issue 26): at least 10,000 checks a second, p99 under
# 10 ms, peak RSS under 64 MiB. No peer runs here (Nebraska needs Go modules and PostgreSQL).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
out=$BENCH_OUT/serve
rm -rf "$out"; mkdir -p "$out/mirror/stable/amd64-usr/2.0.0"
head -c 64000000 /dev/urandom > "$out/mirror/stable/amd64-usr/2.0.0/coreos_production_update.gz"
ln -s 2.0.0 "$out/mirror/stable/amd64-usr/current"
"$BIN/coreos-build" -q serve --mirror "$out/mirror" --listen 127.0.0.1:0 >"$out/serve.out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 100); do grep -qs listening "$out/serve.out" && break; sleep 0.1; done
url=$(sed -n 's/.*listening on //p' "$out/serve.out")
for case in update:1.0.0 noupdate:2.0.0; do
  name=${case%%:*} version=${case#*:}
  cat >"$out/$name.xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" installsource="scheduler" ismachine="1">
    <os version="Chateau" platform="CoreOS" sp="${version}_x86_64"></os>
    <app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="$version" track="stable" bootid="{965fb4c5-ad3e-4eb7-a4c2-ca0c0e31ec84}" oem="" oemversion="" alephversion="1.0.0" machineid="abce671d61774703ac7be60715220bfe" lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false" >
        <ping active="1"></ping>
        <updatecheck></updatecheck>
    </app>
</request>
XML
  cat >"$out/$name.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/xml"
local f = io.open("$out/$name.xml", "r")
wrk.body = f:read("*all")
f:close()
LUA
  curl -sS -X POST --data-binary @"$out/$name.xml" "$url/v1/update/" | grep -q "updatecheck status=\"$([ "$name" = update ] && echo ok || echo noupdate)\"" \
    || { echo "serve: the $name request got an unexpected reply"; exit 1; }
  wrk -t2 -c64 -d10s --latency -s "$out/$name.lua" "$url/v1/update/" >"$out/wrk-$name.txt"
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out/wrk-$name.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$out/wrk-$name.txt")
  errors=$(grep -E "Non-2xx|Socket errors" "$out/wrk-$name.txt" || true)
  echo "serve ($name): ${rps} checks/s (goal >= 10000), p99 ${p99} (goal < 10ms)${errors:+; $errors}"
done
hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
echo "serve: peak RSS $((hwm / 1024)) MiB (goal < 64 MiB)"
