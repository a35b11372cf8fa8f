#!/usr/bin/env bash
# Issue 11, tiny: a third round on the fourth-generation data (data/chno-v4), from v16's candidate.
# Why: v14 and v16 (make_tiny_v14.sh, make_tiny_v16.sh) each met three of tiny's four goals held
# out and missed energy (3.09, then 3.10 meV/atom against 3), while every other number improved
# on both sets: held-out angle 4.84 -> 4.77 deg, RMSE 0.0794 -> 0.0779 eV/A, and on the 120
# unseen x4 molecules energy 3.14 -> 2.92 meV/atom. The shipped original's rounds on the same
# data kept lowering its held-out energy by 0.05-0.1 meV/atom a round; this tests whether a
# third tiny round does the same. Start: datasets/candidates/v16-tiny-e.pt. Recipe as v16
# (continue_tiny in training/train_stage.sh: relative force term weight 10, floor 0.25 eV/A,
# energy weight 1000, lr 1e-4 cosine, batches of 32, two threads) for 40 minutes, then the
# 10-minute energy stage from the last EMA model; validation split: the 120 unseen x4 molecules.
# Fixed before any number of this round was seen (the release rule, as v16's):
#   the candidate is whichever of runs/v25-tiny/last_ema.pt and runs/v25-tiny-e/best.pt has the
#   lower energy MAE on the 120 unseen molecules' MD frames (reports/chno-v3/unseen_v25.json;
#   the held-out molecules take no part in the choice). It ships as tiny if held out it meets
#   all four of tiny's goals (force R2 >= 0.99, angle <= 5 deg, energy MAE <= 3 meV/atom, worst
#   molecule R2 >= 0.98) and its NVE/NVT validation on the report molecules stays within the goals.
# Outcome (README, "tiny, a third round with fourth-generation data"; reports/chno-v3/*_v25.*):
# shipped; the candidate runs/v25-tiny-e/best.pt (unseen energy 2.69 against the last EMA's 2.73)
# is held out at R2 0.9935, 4.62 deg, energy 2.98 meV/atom, worst molecule 0.9905: all four of
# tiny's goals; MD on the three report molecules stable (drift <= 0.0005 meV/atom/ps).
# Every step resumes where it stopped (run this script again): a session may end mid-stage.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=2
source training/train_stage.sh
continue_tiny v25 datasets/candidates/v16-tiny-e.pt "${TINY_MINUTES:-40}" \
  "${TINY_ENERGY_MINUTES:-10}"
