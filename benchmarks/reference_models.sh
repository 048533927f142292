#!/usr/bin/env bash
# The measurements behind the README's results table, for one model:
#   bash benchmarks/reference_models.sh MODEL STEPS EVAL_EVERY RUNS [train options...]
# trains MODEL on fashion-mnist for STEPS steps into RUNS/MODEL (fashion-cnn metrics of 1,000 samples every
# EVAL_EVERY steps), then benchmarks/score_samples.sh samples 10,000 images (seed 0) and scores them against
# fashion-mnist-test with fashion-cnn (is,fid,kid,pr) and TF-Inception (fid,kid,pr), one thread each; the training
# wall time goes to RUNS/MODEL.train_time.json. More rows from one run (e.g. guidance weights of a ddpm):
#   bash benchmarks/score_samples.sh ddpm-cfg RUNS/ddpm RUNS --guidance 1
# Then: python benchmarks/reference_models.py RUNS MODEL... [--ship models/pretrained]
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
model=$1; steps=$2; every=$3; runs=$4; shift 4
cd "$(dirname "$0")/.."
mkdir -p "$runs"
now() { date +%s.%N; }
start=$(now)
python -m genmetrics_cli train "$model" --dataset fashion-mnist --steps "$steps" --out "$runs/$model" --eval-every "$every" \
  --eval-samples 1000 --eval-extractor fashion-cnn --eval-metrics is,fid,kid,pr --seed 0 --no-progress "$@" \
  > "$runs/$model.train.log" 2>&1
echo "{\"train_s\": $(echo "$(now) - $start" | bc)}" > "$runs/$model.train_time.json"
bash benchmarks/score_samples.sh "$model" "$runs/$model" "$runs"
