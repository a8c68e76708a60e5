#!/usr/bin/env bash
# Issue 15's runs on MBPP+, in order: a handful of tuning runs on mbppplus:train, then the
# ablation on mbppplus:validation with the settings fixed beforehand. Each `pot bench` resumes
# where it stopped when rerun (same command), so the script can be restarted at any time.
#
#   benchmarks/mbppplus_ablation.sh tune        # the tuning runs (train)
#   benchmarks/mbppplus_ablation.sh ablation    # search-only and PoT first, then the others
#   benchmarks/mbppplus_ablation.sh others      # zero-shot, best-of-n, self-repair, me-icpo
#
# POT is the command (default: .venv/bin/pot); RUNS the folder of the run folders.
set -euo pipefail
POT=${POT:-.venv/bin/pot}
RUNS=${RUNS:-runs}
COMMON=(--set search.max_new_tokens=512 --job-timeout 1800)

# Tuning: the first six train tasks (by number) where zero-shot got a partial public reward
# and failed the hidden tests (docs/zero-shot-mbppplus), 16 programs each, seed 0.
TUNE=(--tasks mbppplus:train --ids 605,608,626,760,762,775 --budget programs=16 --seeds 0)
# The ablation: every validation task, 32 programs, seed 0.
ABLATION=(--tasks mbppplus:validation --budget programs=32 --seeds 0)
# ME-ICPO's generations all count as programs: a round is k programs, up to k summaries and
# entropy_k probes per candidate (k x entropy_k). At the defaults (16, 16) one round is 288 and
# 32 programs end inside round 1, as best-of-16 with summaries; so did k=8 alone (8 + 8 + 128).
# k=4, entropy_k=2 costs 16 a round: two full rounds in 32 programs, the second sampled from
# the context the first built (early termination on a public pass, as for every method).
ICPO=(--set me-icpo.k=4 --set me-icpo.entropy_k=2)

case "${1:-}" in
  tune)
    "$POT" bench --out "$RUNS/tune-train-defaults" "${TUNE[@]}" --methods search-only,pot "${COMMON[@]}"
    "$POT" bench --out "$RUNS/tune-train-root-widening" "${TUNE[@]}" --methods pot \
      --set pot.search.root_widening=true "${COMMON[@]}"
    ;;
  ablation)
    "$POT" bench --out "$RUNS/ablation-mbppplus-validation" "${ABLATION[@]}" \
      --methods search-only,pot "${COMMON[@]}"
    ;;
  others)
    "$POT" bench --out "$RUNS/ablation-mbppplus-validation-others" "${ABLATION[@]}" \
      --methods zero-shot,best-of-n,self-repair,me-icpo "${ICPO[@]}" "${COMMON[@]}"
    ;;
  *)
    echo "usage: $0 tune|ablation|others" >&2
    exit 2
    ;;
esac
