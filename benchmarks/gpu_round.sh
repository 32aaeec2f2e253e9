#!/usr/bin/env bash
# One GPU round: every speed measurement of the training step, compilation, inference, precision
# and the end-to-end loop, ours and (with --official DIR) the official YOLOv9 code side by side,
# merged into one Markdown table (benchmarks/round_table.py) written into benchmarks/README.md
# between the gpu_round marker comments.
#
#   bash benchmarks/gpu_round.sh --official third_party/yolov9     # one H100/H200, < 8 minutes
#   bash benchmarks/gpu_round.sh --official                        # the same, official code from PyPI
#   bash benchmarks/gpu_round.sh --smoke                           # CPU, tiny sizes (CI)
#
# Stages (each under a hard time cap, so that one slow stage cannot eat the round; a capped or
# failed stage leaves its unfinished rows in the table as "not run: ..."; rows finished before a
# cap are kept; the caps add up to 480 s):
#   train          bench_gpu.py: yolov9-s b64, yolov9-c b32; official, official cl, ours plain,
#                  ours fast, ours graph (the static-shape step, CUDA graph)          cap 120 s
#   compile        bench_gpu.py: ours compile (torch.compile of the model), yolov9-s b64;
#                  compile time in its own column                                      cap  80 s
#   infer          bench_gpu.py: deployed gelan-s/c fp16, batch 1 and 32, eager and CUDA
#                  graph, NCHW and channels-last, ours and official; at batch 1 also
#                  ours graph + the fused GPU postprocessing (decode + batched NMS)   cap  60 s
#   infer_compile  bench_gpu.py: ours compiled (max-autotune) + CUDA graph, batch 1,
#                  gelan-s then gelan-c (compile time in its own column)              cap  90 s
#   precision      precision.py: bf16 and fp16+scaler gradients vs float32, yolov9-s
#                  b64 at 640                                                          cap  30 s
#   e2e            train_e2e.py: 2048 distinct 640-px JPEGs, yolov9-s b64, 16 workers,
#                  ours, the official train_dual.py, then ours with the image cache;
#                  last of 2 epochs                                                    cap 100 s
# Options: --official [DIR] (a checkout of github.com/WongKinYiu/yolov9, git-ignored, e.g.
# third_party/yolov9; without DIR the pinned PyPI package yolo9 of `make install`), --out DIR
# (default runs/gpu_round/<UTC time>), --write FILE (where the table goes; default
# benchmarks/README.md, with --smoke OUT/table.md), --smoke.
set -uo pipefail

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "gpu_round.sh: $*" >&2; exit 2; }

SMOKE=0
OFFICIAL=""
OUT=""
WRITE=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --official)  # a checkout folder, or nothing: the pinned PyPI package (test extra 'official')
      if [[ $# -ge 2 && "$2" != --* ]]; then OFFICIAL="$2"; shift; else OFFICIAL=PYPI; fi ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a folder"; OUT="$2"; shift ;;
    --write) [[ $# -ge 2 ]] || die "--write needs a file"; WRITE="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

cd "$(dirname "$0")/.." || die "cannot enter the repository root"
if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
elif command -v python >/dev/null; then PY=python
else PY=python3; fi
# the scripts import yolov9lite from this checkout, installed or not
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ "$OFFICIAL" == PYPI ]]; then
  # the folder of PyPI's yolo9 (the official repository packaged; models/, utils/, train_dual.py
  # and data/hyps/ are laid out as in a checkout)
  OFFICIAL=$("$PY" -c "import os, yolo9; print(os.path.dirname(yolo9.__file__))" 2>/dev/null) \
    || die "--official without a folder needs the official code installed (make install, or pip install --no-deps yolo9==1.0.18)"
fi
if [[ -n "$OFFICIAL" && ! -f "$OFFICIAL/train_dual.py" ]]; then
  die "--official $OFFICIAL: no train_dual.py there; pass a checkout of github.com/WongKinYiu/yolov9"
fi
OUT=${OUT:-runs/gpu_round/$(date -u +%Y%m%d-%H%M%S)}

if [[ $SMOKE == 1 ]]; then
  PLAN=smoke
  WRITE=${WRITE:-$OUT/table.md}
  # CPU, one thread, tiny models and images: checks that every stage runs, measures nothing
  export OMP_NUM_THREADS=1
  COMMON=(--smoke --device cpu --threads 1)
  TRAIN_MODELS=yolov9-nano:2; COMPILE_MODELS=yolov9-nano:2; INFER_MODELS=gelan-nano:1,2
  PRECISION=(--smoke); E2E=(--smoke --cached)
else
  PLAN=full
  WRITE=${WRITE:-benchmarks/README.md}
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || die "no CUDA GPU visible to $PY; on a CPU run the round with --smoke"
  COMMON=()
  TRAIN_MODELS=yolov9-s:64,yolov9-c:32; COMPILE_MODELS=yolov9-s:64; INFER_MODELS=gelan-s:1,32,gelan-c:1,32
  PRECISION=(--model yolov9-s --batch 64 --img 640)
  E2E=(--n 2048 --model yolov9-s --batch 64 --img 640 --workers 16 --cached)
fi
mkdir -p "$OUT" || die "--out $OUT: cannot create it"
: > "$OUT/stages.jsonl"

OFF=()      # bench_gpu.py's official flags
OFF_E2E=()  # train_e2e.py's
if [[ -n "$OFFICIAL" ]]; then
  # Arial.ttf and import stand-ins the official code needs offline
  STUBS=$("$PY" benchmarks/train_e2e.py --write-support "$OUT/official_support") \
    || die "could not prepare $OUT/official_support"
  export YOLOV5_CONFIG_DIR="$PWD/$OUT/official_support"
  OFF=(--official "$OFFICIAL" --stubs "$STUBS")
  OFF_E2E=(--official "$OFFICIAL")
fi

# stage NAME CAP_S COMMAND...: run under a hard cap, log to OUT/NAME.log, record the outcome
stage() {
  local name=$1 cap=$2 start rc
  shift 2
  start=$(date +%s)
  echo "== $name (cap ${cap} s): $*"
  timeout --kill-after=10 "$cap" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  echo "{\"stage\": \"$name\", \"rc\": $rc, \"cap_s\": $cap, \"s\": $(( $(date +%s) - start ))}" \
    >> "$OUT/stages.jsonl"
  echo "   exit $rc after $(( $(date +%s) - start )) s; log $OUT/$name.log"
  tail -n 3 "$OUT/$name.log" | sed 's/^/   | /'
}
skip() {  # skip NAME REASON: a stage not run in this mode
  echo "{\"stage\": \"$1\", \"rc\": null, \"skipped\": \"$2\"}" >> "$OUT/stages.jsonl"
  echo "== $1: skipped ($2)"
}

T0=$(date +%s)
BENCH=("$PY" benchmarks/bench_gpu.py ${COMMON[@]+"${COMMON[@]}"})
stage train 120 "${BENCH[@]}" ${OFF[@]+"${OFF[@]}"} --sections train --train-models "$TRAIN_MODELS" \
  --variants plain,fast,graph --json "$OUT/train.json"
if [[ $SMOKE == 1 ]]; then
  skip compile "torch.compile takes minutes on a CPU (tests/test_graph_step.py traces the loss)"
else
  stage compile 80 "${BENCH[@]}" --sections train --train-models "$COMPILE_MODELS" \
    --variants compile --json "$OUT/compile.json"
fi
stage infer 60 "${BENCH[@]}" ${OFF[@]+"${OFF[@]}"} --sections infer --infer-models "$INFER_MODELS" \
  --json "$OUT/infer.json"
if [[ $SMOKE == 1 ]]; then
  skip infer_compile "compiled + CUDA-graph inference needs a GPU"
else
  stage infer_compile 90 "${BENCH[@]}" --sections infer-compile \
    --infer-models gelan-s:1,gelan-c:1 --json "$OUT/infer_compile.json"
fi
stage precision 30 "$PY" benchmarks/precision.py "${PRECISION[@]}" --json "$OUT/precision.json"
stage e2e 100 "$PY" benchmarks/train_e2e.py "${E2E[@]}" ${OFF_E2E[@]+"${OFF_E2E[@]}"} \
  --out "$OUT/e2e" --json "$OUT/e2e.json"

CMD="bash benchmarks/gpu_round.sh"
[[ $SMOKE == 1 ]] && CMD+=" --smoke"
[[ -n "$OFFICIAL" ]] && CMD+=" --official $OFFICIAL"
"$PY" benchmarks/round_table.py --dir "$OUT" --plan "$PLAN" --write "$WRITE" \
  ${OFFICIAL:+--official "$OFFICIAL"} --command "$CMD" --elapsed $(( $(date +%s) - T0 )) \
  || die "could not write the table into $WRITE"
echo "table written into $WRITE (rows and logs in $OUT)"
