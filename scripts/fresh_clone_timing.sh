#!/usr/bin/env bash
# Fresh-clone timing of README command 1 (pip install, then rnnkit train sentiment) with an empty
# kernel cache, in a plain venv, from a clone of this checkout's HEAD: bash scripts/fresh_clone_timing.sh
set -e
SRC=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
D=/tmp/rnnkit-fresh; rm -rf $D; mkdir -p $D/kernels; cd $D
git clone -q "$SRC" repo
cd repo; git log --oneline -1
python -m venv $D/venv; source $D/venv/bin/activate
export RNNKIT_KERNELS_DIR=$D/kernels
echo "load before: $(cat /proc/loadavg)"
s=$(date +%s.%N)
pip install -q -c constraints.txt . 2>&1 | grep -v "is ignored" || true
m=$(date +%s.%N)
rnnkit train sentiment --out $D/run 2>&1 | tr '\r' '\n' | grep -v "^Epoch\|it/s\]$" | grep -v "step/s" || true
e=$(date +%s.%N)
echo "install $(echo "$m - $s" | bc) s; train (with build) $(echo "$e - $m" | bc) s; total $(echo "$e - $s" | bc) s"
echo "load after: $(cat /proc/loadavg)"
