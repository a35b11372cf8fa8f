#!/usr/bin/env bash
# Each shipped CHNO student's card gets the held-out numbers of the stages that made it and of
# the candidates tried beside them (issue 11: the energy ablation on the card), read from the
# committed held-out reports (python -m training.heldout; reports/chno-v3/heldout*.json).
# Rerunning it replaces the same tables; run it again after a student is shipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ship() { ${PY:-.venv/bin/python} -m training.ship "$@"; }
# original_round ROUND START OUTCOME: the three rows of an original round made by
# continue_shipped (training/train_stage.sh): the shipped start, its last EMA, its energy stage
original_round() {
  ship --ablation original "reports/chno-v3/heldout_$1.json" "runs/gen${1#v}/original.pt=$2" \
    "runs/$1-original/last_ema.pt=+ 50 min on 2 CPU threads with chno-v4 (energy weight 200), last EMA" \
    "runs/$1-original-e/best.pt=+ 8-min energy stage picked on 120 unseen molecules: $3"
}
v3=reports/chno-v3/heldout.json
ship --ablation tiny "$v3" \
  "runs/gen5/tiny.pt=second generation (start)" \
  "runs/v6-tiny/best.pt=+ 55 min CPU (energy weight 200), best validation force RMSE epoch" \
  "runs/v6-tiny/last_ema.pt=+ 55 min CPU (energy weight 200), last EMA model" \
  "runs/v6-tiny-e/best.pt=+ energy stage (weight 1000) from the last EMA model: shipped at 2b9b58e (until v25)"
ship --ablation tiny reports/chno-v3/heldout_v9.json \
  "runs/gen7/tiny.pt=shipped at 2b9b58e (until v25)" \
  "runs/v9-tiny-a/best.pt=not shipped: + v7, v8 and v9 stages (relative force term)" \
  "runs/v9-tiny-a-e/best.pt=not shipped: the same + energy stage" \
  "runs/v9-tiny-b/best.pt=not shipped: v9 stage with energy weight 1000" \
  "runs/v9-tiny-b-e/best.pt=not shipped: the same + energy stage"
ship --ablation ultra-tiny "$v3" \
  "runs/gen5/ultra-tiny.pt=second generation (start)" \
  "runs/v6-ultra-tiny/best.pt=+ 55 min CPU (energy weight 200), best validation force RMSE epoch" \
  "runs/v6-ultra-tiny/last_ema.pt=+ 55 min CPU (energy weight 200), last EMA model" \
  "runs/v6-ultra-tiny-e/best.pt=+ energy stage (weight 1000) from the last EMA model: shipped"
ship --ablation original "$v3" \
  "runs/gen5/original.pt=second generation (start)" \
  "runs/v6cpu-original/last_ema.pt=+ 35 min on 2 CPU threads (energy weight 200), last EMA" \
  "runs/v6cpu-original-e/best.pt=+ energy stage (weight 1000): shipped at 94d09ed"
ship --ablation original reports/chno-v3/heldout_v8.json \
  "runs/gen7/original.pt=shipped at 94d09ed" \
  "runs/v8-original-e/best.pt=+ 105 min CPU (relative force term) + energy stage"
ship --ablation original reports/chno-v3/heldout_v9.json \
  "runs/gen7/original.pt=shipped at 94d09ed" \
  "runs/v9-original-a/best.pt=v8 + 5.2 min H200 (energy weight 200)" \
  "runs/v9-original-a-e/best.pt=+ energy stage (weight 1000): shipped at dfc06e1" \
  "runs/v9-original-b-e/best.pt=not shipped: v8 + H200 with floor 0.25, energy weight 500, + energy stage"
ship --ablation original reports/chno-v3/heldout_v10.json \
  "runs/gen9/original.pt=shipped at dfc06e1" \
  "runs/v10-original/last_ema.pt=+ 50 min on 2 CPU threads (energy weight 200), last EMA" \
  "runs/v10-original-e/best.pt=+ energy stage (weight 1000): shipped"
ship --ablation original reports/chno-v3/heldout_v11.json \
  "runs/gen10/original.pt=shipped at b66de53" \
  "runs/v11-original-a/best.pt=+ 5 min H200, batches of 128 (energy weight 200)" \
  "runs/v11-original-a-e/best.pt=+ energy stage (weight 1000): passed its rule, continued in v12" \
  "runs/v11-original-b/best.pt=not shipped: + 5 min H200, batches of 256" \
  "runs/v11-original-b-e/best.pt=not shipped: the same + energy stage"
ship --ablation original reports/chno-v3/heldout_v12.json \
  "runs/v11-original-a-e/best.pt=v11 pick" \
  "runs/v12-original/last_ema.pt=+ 2.2 min alone on the H200, batches of 128 (last EMA)" \
  "runs/v12-original-e/best.pt=+ 8-min energy stage on 2 CPU threads: shipped"
ship --ablation original reports/chno-v3/heldout_v13.json \
  "runs/gen13/original.pt=shipped at 643fb37" \
  "runs/v13-original/last_ema.pt=+ 35 min on 2 CPU threads (energy weight 200), last EMA" \
  "runs/v13-original-e/best.pt=+ 6-min energy stage (weight 1000)"
original_round v15 "shipped at fe5e1e0 (v13)" "shipped at 1a442c8"
original_round v17 "shipped at 1a442c8 (v15)" "shipped at 667d79f"
original_round v19 "shipped at 667d79f (v17)" "shipped at cc97ba5"
original_round v21 "shipped at cc97ba5 (v19)" "shipped at 9c5aa68"
original_round v23 "shipped at 9c5aa68 (v21)" "shipped"
ship --ablation tiny reports/chno-v3/heldout_v11.json \
  "runs/gen10/tiny.pt=shipped at 2b9b58e (until v25)" \
  "runs/v11-tiny-a/best.pt=not shipped: v9-tiny-a-e + 5 min H200, batches of 128" \
  "runs/v11-tiny-a-e/best.pt=not shipped: the same + energy stage" \
  "runs/v11-tiny-b/best.pt=not shipped: v9-tiny-a-e + 5 min H200, batches of 256" \
  "runs/v11-tiny-b-e/best.pt=not shipped: the same + energy stage (the pick)"
ship --ablation tiny reports/chno-v3/heldout_v14.json \
  "runs/gen14/tiny.pt=shipped at 2b9b58e (until v25)" \
  "datasets/candidates/v11-tiny-b-e.pt=not shipped: the v11 pick (start)" \
  "runs/v14-tiny/last_ema.pt=not shipped: + 35 min on 2 CPU threads with chno-v4 (last EMA)" \
  "runs/v14-tiny-e/best.pt=not shipped: + energy stage picked on 120 unseen molecules"
ship --ablation tiny reports/chno-v3/heldout_v16.json \
  "runs/gen14/tiny.pt=shipped at 2b9b58e (until v25)" \
  "datasets/candidates/v14-tiny-e.pt=not shipped: the v14 candidate (start)" \
  "runs/v16-tiny/last_ema.pt=not shipped: + 40 min on 2 CPU threads with chno-v4 (last EMA)" \
  "runs/v16-tiny-e/best.pt=not shipped: + energy stage (the candidate, lower unseen energy)"
ship --ablation tiny reports/chno-v3/heldout_v25.json \
  "runs/gen14/tiny.pt=shipped at 2b9b58e (until v25)" \
  "datasets/candidates/v16-tiny-e.pt=not shipped: the v16 candidate (start)" \
  "runs/v25-tiny/last_ema.pt=+ 40 min on 2 CPU threads with chno-v4 (last EMA)" \
  "runs/v25-tiny-e/best.pt=+ energy stage (the candidate, lower unseen energy): shipped"
