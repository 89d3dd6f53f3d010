#!/usr/bin/env bash
# Run vlmcap's engine_loop and pipeline benchmarks on an NVIDIA GPU machine with no network,
# with vLLM 0.25.0 carried as parts (bench/gpu/make_parts.sh) and a Qwen2.5-VL-7B-shaped model
# with random weights (load_format=dummy). Run from the repository root:
#
#   bench/gpu/run_on_gpu.sh stage .gpu-bundle/pN   # unpack one part (any order, each once)
#   bench/gpu/run_on_gpu.sh prep                   # model folder + 200 synthetic clips
#   bench/gpu/run_on_gpu.sh engine_loop            # -> $RESULTS/engine_loop_h100.json
#   bench/gpu/run_on_gpu.sh pipeline               # -> $RESULTS/pipeline_h100.json
#   bench/gpu/run_on_gpu.sh breakdown              # -> $RESULTS/gpu_breakdown_h200.json
#   STAGE2=off bench/gpu/run_on_gpu.sh loop256     # -> $RESULTS/gpu_engine_loop_stage2_off.json
#   bench/gpu/run_on_gpu.sh caption_loop           # -> $RESULTS/gpu_engine_loop_caption_CARD.json
#   bench/gpu/run_on_gpu.sh caption_breakdown      # -> $RESULTS/gpu_breakdown_caption_CARD.json
#   bench/gpu/run_on_gpu.sh serve                  # -> $RESULTS/gpu_client_CARD.json
#   bench/gpu/run_on_gpu.sh mm_cache               # -> $RESULTS/gpu_engine_args_mm_cache_stage2_off_CARD.json
#   bench/gpu/run_on_gpu.sh engines_per_gpu        # -> $RESULTS/gpu_engines_per_gpu_CARD.json
#   bench/gpu/run_on_gpu.sh mixed_profile          # -> $RESULTS/gpu_breakdown_profile_CARD.json
# (CARD: h100, h200, ... from nvidia-smi; STAGE2=on caption_loop -> ..._caption_stage2_on_CARD)
#   bench/gpu/run_on_gpu.sh all .gpu-bundle/p*     # everything in one go
#
# Environment: GPU_WORK (default /tmp/vlmcap-gpu: site packages, model folder, clips, logs),
# RESULTS (default $OUT if set, else bench/results), CALL_START / CALL_LIMIT_S (Unix time the
# surrounding job started and its limit in seconds: engine_loop skips scenarios that would not
# end 30 s before it; default: now and 600).
set -euo pipefail
G=${GPU_WORK:-/tmp/vlmcap-gpu}
RESULTS=$(realpath -m "${RESULTS:-${OUT:-bench/results}}")
CALL_START=${CALL_START:-$(date +%s)}
CALL_LIMIT_S=${CALL_LIMIT_S:-600}
MODEL=$G/qwen25vl-7b
CLIPS=$G/clips
mkdir -p "$G/site" "$G/logs" "$RESULTS"
export PYTHONPATH=$G/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export VLLM_USE_FLASHINFER_SAMPLER=0 # FlashInfer is not carried
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
# the card's family for result names (h100, h200, ...): the lent kind may be either
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 |
  grep -o 'H[0-9][0-9]*' | head -1 | tr 'A-Z' 'a-z' || true)
CARD=${CARD:-gpu}
# one engine alone on the card: about 59 GB for it on either card (0.42 of an H200's memory, the
# share each of two engines side by side gets there)
ONE_ENGINE_MEM=0.42
[ "$CARD" = h100 ] && ONE_ENGINE_MEM=0.75

# clips for the pipeline benchmark: 4-8 s (8-16 frames at 2 fps), 30 fps, 640x360 H.264
CLIP_ARGS=(--clips 200 --seconds 4-8 --fps 30 --video-size 640x360 --clips-dir "$CLIPS")
MODEL_ARGS=(--model qwen2.5-vl --model-path "$MODEL" --engine-arg load_format=dummy
  --engine-arg enforce_eager=false)

stage() {
  local part=$1
  (cd "$part" && md5sum -c --quiet MD5SUMS)
  for a in "$part"/*.tar.xz; do
    xz -T0 -dc "$a" | tar -x -C "$G/site"
    echo "unpacked $a"
  done
}

prep() {
  [ -f "$MODEL/config.json" ] || $PY bench/gpu/make_qwen25vl_7b_folder.py "$MODEL"
  (cd bench && $PY pipeline.py "${CLIP_ARGS[@]}" --gen-procs "$(nproc)" --make-clips-only)
}

engine_loop() {
  local deadline=$((CALL_START + CALL_LIMIT_S - 30))
  # two engines (LLM + AsyncLLM) share the GPU: 0.42 of its memory each
  (cd bench && $PY engine_loop.py "${MODEL_ARGS[@]}" --engine-arg gpu_memory_utilization=0.42 \
    --requests 128 --repeats 3 --caps 16,256 --max-tokens 8-48 \
    --image-sides 448,560,672,784,896 --video-frames 8 --video-side 448 \
    --warmup first --pause 0.5 --stage2-last --lenient --deadline "$deadline" \
    --out "$RESULTS/engine_loop_h100.json") 2>&1 | tee "$G/logs/engine_loop.log"
}

# where the in-flight loop's wall time goes (one engine; BREAKDOWN_REPEATS timed runs after one
# untimed warm-up on the full workload shape)
breakdown() {
  [ -f "$MODEL/config.json" ] || $PY bench/gpu/make_qwen25vl_7b_folder.py "$MODEL"
  (cd bench && $PY gpu_breakdown.py "${MODEL_ARGS[@]}" --engine-arg gpu_memory_utilization=0.42 \
    --requests 192 --cap 256 --max-tokens 32-160 --image-sides 448,560,672 --video-frames 8 \
    --video-side 448 --warmups 1 --repeats "${BREAKDOWN_REPEATS:-3}" --nvml-period 0.1 \
    --pause 1.5 --out "$RESULTS/gpu_breakdown_h200.json") 2>&1 | tee "$G/logs/gpu_breakdown.log"
}

# the workload at cap 256 (192 requests, 32-160 output tokens, 448-672 px pictures and
# 8-frame 448x448 clips): generate, vlmcap in-flight (requests built on threads and on the
# loop's own thread) and AsyncLLM; STAGE2=off or on (on: 128 requests)
loop256() {
  local stage2=${STAGE2:-off} n=192
  [ "$stage2" = on ] && n=128
  local deadline=$((CALL_START + CALL_LIMIT_S - 30))
  (cd bench && $PY engine_loop.py "${MODEL_ARGS[@]}" --engine-arg gpu_memory_utilization=0.42 \
    --requests "$n" --repeats "${LOOP_REPEATS:-3}" --caps 256 --max-tokens 32-160 \
    --image-sides 448,560,672 --video-frames 8 --video-side 448 --stage2 "$stage2" \
    --contenders "${CONTENDERS:-abef}" --warmup first --pause 0.5 --lenient \
    --deadline "$deadline" --out "$RESULTS/gpu_engine_loop_stage2_$stage2.json") 2>&1 |
    tee "$G/logs/loop256.log"
}

# the caption-shaped workload: clips only, 8, 12 or 16 frames of 448x448, 256 output tokens each
CAPTION_ARGS=(--video-share 1 --video-frames 8,12,16 --video-side 448 --max-tokens 256-256)

# the engine loop on it at cap 256, stage 2 off: generate, in-flight (threads / loop's thread),
# AsyncLLM
caption_loop() {
  local deadline=$((CALL_START + CALL_LIMIT_S - 30)) stage2=${STAGE2:-off} name=caption
  [ "$stage2" = on ] && name=caption_stage2_on
  (cd bench && $PY engine_loop.py "${MODEL_ARGS[@]}" --engine-arg gpu_memory_utilization=0.42 \
    --requests "${CAPTION_REQUESTS:-128}" --repeats 3 --caps 256 "${CAPTION_ARGS[@]}" \
    --stage2 "$stage2" --contenders "${CONTENDERS:-abef}" --warmup first --pause 0.5 --lenient \
    --deadline "$deadline" --out "$RESULTS/gpu_engine_loop_${name}_$CARD.json") 2>&1 |
    tee "$G/logs/caption_loop.log"
}

# where the time goes on it (requests built on threads, vlmcap's default), clips per second and
# the floor estimate, then one run under vLLM's profiler: the GPU's busy and idle time
caption_breakdown() {
  [ -f "$MODEL/config.json" ] || $PY bench/gpu/make_qwen25vl_7b_folder.py "$MODEL"
  (cd bench && $PY gpu_breakdown.py "${MODEL_ARGS[@]}" \
    --engine-arg gpu_memory_utilization="$ONE_ENGINE_MEM" --requests "${CAPTION_REQUESTS:-128}" \
    --cap 256 "${CAPTION_ARGS[@]}" --warmups 1 --repeats 3 --prepare-threads auto \
    --nvml-period 0.1 --pause 1.5 --profile "$G/profile" \
    --profile-steps "${PROFILE_STEPS:-40}" --out "$RESULTS/gpu_breakdown_caption_$CARD.json") 2>&1 |
    tee "$G/logs/caption_breakdown.log"
}

# server mode: vlmcap serve's engine and the offline one side by side on the GPU (0.42 of its
# memory each), the caption pipeline from files at client concurrencies 1, 16, 64 and 128
# vs offline on the same items (images 640x480, clips 4 s of 640x360 at 30 fps)
serve() {
  (cd bench && $PY client.py "${MODEL_ARGS[@]}" --engine-arg gpu_memory_utilization=0.42 \
    --items "${SERVE_ITEMS:-48}" --videos 0.33 --repeats 3 --concurrency ${SERVE_CONCURRENCY:-1 16 64 128} \
    --image-size 640x480 --video-size 640x360 --seconds 4 --fps 30 --max-output-tokens 64 \
    --workers 8 --offline-target 0.9 --out "$RESULTS/gpu_client_$CARD.json") 2>&1 |
    tee "$G/logs/serve.log"
}

# vLLM's multimodal processor cache off (requests built on vlmcap's threads) vs on (one thread),
# two engines side by side, on the workload with stage 2 off (STAGE2=on: with it)
mm_cache() {
  local stage2=${STAGE2:-off}
  (cd bench && $PY engine_args.py "${MODEL_ARGS[@]}" --engine-arg gpu_memory_utilization=0.42 \
    --variant cache-off:mm_cache=false --variant cache-on:mm_cache=true --requests 192 \
    --cap 256 --repeats 3 --stage2 "$stage2" --image-sides 448,560,672 --video-frames 8 \
    --video-side 448 --max-tokens 32-160 --pause 1.5 \
    --out "$RESULTS/gpu_engine_args_mm_cache_stage2_${stage2}_$CARD.json") 2>&1 | tee "$G/logs/mm_cache.log"
}

# two engines on the one GPU (0.42 of its memory each): engine 0 alone on the workload
# vs the same requests dealt to both, one in-flight loop each, run at once
engines_per_gpu() {
  (cd bench && $PY engines_per_gpu.py "${MODEL_ARGS[@]}" --engine-arg gpu_memory_utilization=0.42 \
    --engines 2 --requests 192 --cap 256 --repeats 3 --stage2 "${STAGE2:-off}" \
    --image-sides 448,560,672 --video-frames 8 --video-side 448 --max-tokens 32-160 --pause 1.5 \
    --out "$RESULTS/gpu_engines_per_gpu_$CARD.json") 2>&1 | tee "$G/logs/engines_per_gpu.log"
}

# the workload on one engine (requests built on threads) under vLLM's profiler after 3
# timed runs: where the GPU idles when the loop waits on the engine core
mixed_profile() {
  [ -f "$MODEL/config.json" ] || $PY bench/gpu/make_qwen25vl_7b_folder.py "$MODEL"
  (cd bench && $PY gpu_breakdown.py "${MODEL_ARGS[@]}" \
    --engine-arg gpu_memory_utilization="$ONE_ENGINE_MEM" --requests 192 --cap 256 \
    --max-tokens 32-160 --image-sides 448,560,672 --video-frames 8 --video-side 448 \
    --warmups 1 --repeats 3 --prepare-threads auto --nvml-period 0.1 --pause 1.5 \
    --profile "$G/profile-mixed" --profile-steps "${PROFILE_STEPS:-40}" \
    --out "$RESULTS/gpu_breakdown_profile_$CARD.json") 2>&1 | tee "$G/logs/mixed_profile.log"
}

pipeline() {
  (cd bench && $PY pipeline.py "${MODEL_ARGS[@]}" "${CLIP_ARGS[@]}" --gen-procs "$(nproc)" \
    --repeats 3 --workers 8 --predecode-threads 8 --max-output-tokens 64 --pause 0.5 \
    --out "$RESULTS/pipeline_h100.json") 2>&1 | tee "$G/logs/pipeline.log"
}

cmd=${1:?usage: run_on_gpu.sh stage PART | prep | engine_loop | pipeline | breakdown | loop256 | caption_loop | caption_breakdown | serve | mm_cache | engines_per_gpu | mixed_profile | all PART...}
shift
case $cmd in
  stage) for p in "$@"; do stage "$p"; done ;;
  prep) prep ;;
  engine_loop) engine_loop ;;
  pipeline) pipeline ;;
  breakdown) breakdown ;;
  loop256) loop256 ;;
  caption_loop) caption_loop ;;
  caption_breakdown) caption_breakdown ;;
  serve) serve ;;
  mm_cache) mm_cache ;;
  engines_per_gpu) engines_per_gpu ;;
  mixed_profile) mixed_profile ;;
  all)
    for p in "$@"; do stage "$p"; done
    prep
    engine_loop
    pipeline
    breakdown
    ;;
  *)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
