#!/bin/bash
# The plan's estimate against the real demo (issue 22): --plan --probe, --plan, then the demo, timed.
# Usage: bash benchmarks/plan_vs_demo.sh [OUT_DIR]   (run from the repository root; OUT_DIR is deleted first)
set -u
out=${1:-/tmp/sedtune-plan-vs-demo}
py=${PYTHON:-python}
rm -rf "$out"
echo "plan start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
$py -m search.run --space spaces/demo.yaml --plan --probe
echo "plan (tables) $(date -u +%T)"
$py -m search.run --space spaces/demo.yaml --plan
echo "demo start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
$py -m search.run --space spaces/demo.yaml --out "$out"
rc=$?
end=$(date +%s.%N)
echo "demo end $(date -u +%T) rc $rc wall $(echo "$end - $start" | bc) s load $(cut -d' ' -f1-3 /proc/loadavg)"
