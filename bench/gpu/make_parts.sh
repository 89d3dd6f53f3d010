#!/usr/bin/env bash
# Build the parts that carry vLLM 0.25.0 (+ its missing dependencies + PyAV) to the GPU machine.
#
#   bench/gpu/make_parts.sh [OUT_DIR]        # default: .gpu-bundle (git-ignored)
#
# That machine (Python 3.12, PyTorch 2.11 / CUDA 13, no network) already has most packages
# (device-packages.txt). Wheels are unpacked here into site trees and packed as independent
# .tar.xz archives, so each part can be unpacked on the machine as soon as it arrives:
#   deps.tar.xz   the pinned vLLM dependencies the machine lacks (vllm-0.25-deps.txt) + PyAV
#   vllm*.tar.xz  vLLM 0.25.0 without FlashAttention-2 (Hopper uses FlashAttention-3), the
#                 Rust serving front end and extension builds for other Pythons; its three
#                 big extension libraries in archives of their own
# The archives are spread over OUT_DIR/p1, p2, ... (each under PART_BYTES, default 63,000,000)
# so that one device call carries one part folder; deps.tar.xz always goes in p1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../.gpu-bundle}
cap=${PART_BYTES:-63000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
plat=(--only-binary=:all: --python-version 3.12 --implementation cp)
for p in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 \
  manylinux_2_24_x86_64 manylinux_2_27_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64; do
  plat+=(--platform "$p")
done
norm() { tr 'A-Z' 'a-z' | sed 's/[-_.]\+/_/g'; }
norm <"$here/device-packages.txt" >"$work/have.txt"
while read -r req; do
  [ -n "$req" ] || continue
  grep -qx "$(echo "${req%%==*}" | norm)" "$work/have.txt" || echo "$req"
done <"$here/vllm-0.25-deps.txt" >"$work/need.txt"
echo "av==18.1.0" >>"$work/need.txt"
mkdir -p "$work/whl" "$work/vllm-whl"
python3 -m pip download -q --no-deps "${plat[@]}" -d "$work/vllm-whl" vllm==0.25.0
python3 -m pip download -q --no-deps "${plat[@]}" -d "$work/whl" -r "$work/need.txt"

# unpack a wheel the way pip --target lays it out (no scripts, no bytecode)
unpack() {
  local whl=$1 dest=$2 d
  unzip -q -o "$whl" -d "$dest"
  for d in "$dest"/*.data; do
    [ -d "$d" ] || continue
    for sub in purelib platlib; do
      [ -d "$d/$sub" ] && cp -a "$d/$sub/." "$dest/" && rm -rf "${d:?}/$sub"
    done
    rm -rf "$d"
  done
}
mkdir -p "$work/deps" "$work/vllm"
for w in "$work"/whl/*.whl; do unpack "$w" "$work/deps"; done
unpack "$work"/vllm-whl/vllm-0.25.0-*.whl "$work/vllm"
(
  cd "$work/vllm"
  rm -f vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so vllm/vllm-rs
  find . \( -name '*cpython-310*' -o -name '*cpython-311*' -o -name '*cpython-313*' \
    -o -name '*cpython-314*' \) -delete
)
xzc() { nice -n 19 xz -T2 -6 -c; }
mkdir -p "$work/arch"
tar cf - -C "$work/deps" . | xzc >"$work/arch/deps.tar.xz"
# the big extension libraries each in an archive of its own, the rest of vLLM in one
big=(vllm/vllm_flash_attn/_vllm_fa3_C.abi3.so vllm/_C_stable_libtorch.abi3.so
  vllm/_moe_C_stable_libtorch.abi3.so)
excl=()
for f in "${big[@]}"; do
  name=$(basename "$f" .abi3.so)
  tar cf - -C "$work/vllm" "$f" | xzc >"$work/arch/vllm${name}.tar.xz"
  excl+=(--exclude="$f")
done
tar cf - -C "$work/vllm" "${excl[@]}" . | xzc >"$work/arch/vllm-rest.tar.xz"
ls -l "$work/arch"

# first fit, deps first, biggest next
rm -rf "$out" && mkdir -p "$out"
declare -a used=()
for a in deps.tar.xz $(cd "$work/arch" && ls -S | grep -v '^deps.tar.xz$'); do
  size=$(stat -c %s "$work/arch/$a")
  [ "$size" -le "$cap" ] || {
    echo "$a is $size bytes, over $cap" >&2
    exit 1
  }
  i=0
  while [ "$i" -lt "${#used[@]}" ] && [ $((used[i] + size)) -gt "$cap" ]; do i=$((i + 1)); done
  [ "$i" -lt "${#used[@]}" ] || used+=(0)
  used[i]=$((used[i] + size))
  mkdir -p "$out/p$((i + 1))"
  mv "$work/arch/$a" "$out/p$((i + 1))/"
done
for d in "$out"/p*; do (cd "$d" && md5sum ./*.tar.xz >MD5SUMS && cat MD5SUMS); done
du -b "$out"/p* | sort -k2
