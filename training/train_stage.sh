# Sourced by the training recipes (make_*.sh): one resumable training stage.
# train_stage OUT [ase-distill train arguments...]
#   finished (OUT/summary.json): nothing to do; an epoch done (OUT/last.pt): --resume;
#   killed before its first epoch (only OUT/config.json): --overwrite (nothing to lose).
train_stage() {
  local out=$1 extra=()
  shift
  [ -f "$out/summary.json" ] && return 0
  if [ -f "$out/last.pt" ]; then extra+=(--resume)
  elif [ -f "$out/config.json" ]; then extra+=(--overwrite)
  fi
  ${PY:-.venv/bin/python} -m training.cli train --output "$out" --quiet "$@" "${extra[@]}"
}

# students_at COMMIT DIR SIZE...: the shipped students of COMMIT as DIR/SIZE.{pt,json} (kept)
students_at() {
  local commit=$1 dir=$2 size ext
  shift 2
  mkdir -p "$dir"
  for size in "$@"; do
    for ext in pt json; do
      [ -f "$dir/$size.$ext" ] || git show "$commit:ase_distill/students/$size.$ext" > "$dir/$size.$ext"
    done
  done
}
