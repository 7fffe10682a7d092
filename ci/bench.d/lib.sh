# Shared by ci/bench.d/*.sh: time commands side by side with hyperfine and print the ratio.
# usage: [GOAL=RATIO] compare NAME RUNS 'OUR COMMAND' 'PEER COMMAND' [PREPARE]
# GOAL, when set, is printed beside the ratio (the issue's target for ours/peer).
compare() {
  local name=$1 runs=$2 ours=$3 peer=$4 prep=${5:-true}
  local json=$BENCH_OUT/$name.json
  hyperfine --style basic -N --runs "$runs" --warmup 1 --prepare "$prep" --export-json "$json" \
    -n ours "$ours" -n peer "$peer" >/dev/null 2>&1 || hyperfine --style basic --runs "$runs" --warmup 1 \
    --prepare "$prep" --export-json "$json" -n ours "$ours" -n peer "$peer" >/dev/null
  python3 - "$json" "$name" "${GOAL:-}" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
o, p = r["ours"]["median"], r["peer"]["median"]
goal = f" (goal <= {sys.argv[3]})" if sys.argv[3] else ""
print(f"{sys.argv[2]}: ours median {o:.2f} s, peer median {p:.2f} s, ratio {o/p:.2f}{goal}")
PY
}
