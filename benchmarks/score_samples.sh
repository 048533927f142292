#!/usr/bin/env bash
# Samples one row of the README's results table and scores it:
#   bash benchmarks/score_samples.sh NAME CHECKPOINT RUNS [sample options...]
# draws 10,000 samples (seed 0) from CHECKPOINT with the given `genmetrics sample` options (e.g. --guidance 1) into
# RUNS/NAME.samples.npz and scores them against fashion-mnist-test with each extractor of $EXTRACTORS (default
# "fashion-cnn inception"; one thread each): fashion-cnn (is,fid,kid,pr) -> RUNS/NAME.fcnn.json, TF-Inception
# (fid,kid,pr) -> RUNS/NAME.incep.json. (reference_models.py measures every row's sampling speed itself.)
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
name=$1; checkpoint=$2; runs=$3; shift 3
cd "$(dirname "$0")/.."
python -m genmetrics_cli sample "$checkpoint" -n 10000 --seed 0 -o "$runs/$name.samples.npz" "$@"
for extractor in ${EXTRACTORS:-fashion-cnn inception}; do
  case $extractor in
    fashion-cnn) out=fcnn; metrics=is,fid,kid,pr ;;
    inception) out=incep; metrics=fid,kid,pr ;;
    *) echo "EXTRACTORS: fashion-cnn and/or inception, not $extractor" >&2; exit 2 ;;
  esac
  python -m genmetrics_cli score "$runs/$name.samples.npz" fashion-mnist-test --extractor "$extractor" --metrics "$metrics" \
    --json --no-progress > "$runs/$name.$out.json.tmp"
  mv "$runs/$name.$out.json.tmp" "$runs/$name.$out.json"
done
