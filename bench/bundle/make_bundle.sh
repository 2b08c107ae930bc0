#!/bin/bash
# Builds outputs/bundle/stm-analyze-bundle.tar.xz: stm-analyze for x86-64 hosts that have no Swift, to
# time it (bench) or run it there. Two release builds (AVX-512 and AVX2 vector widths: the `run`
# wrapper picks the one the host's CPU runs), the shared libraries they load other than glibc's (the
# Swift runtime, OpenBLAS, libpng, libjpeg, FreeType, zlib and theirs), and the PyTorch baseline
# scripts. The target needs glibc 2.36 or newer (Debian 12, Ubuntu 24.04) and, for --pytorch, a Python
# with torch; figures need DejaVu Sans where Debian's fonts-dejavu-core puts it. Leaves out: fonts,
# checkpoints and images.
set -euo pipefail
cd "$(dirname "$0")/../.."
SWIFT=${SWIFT:-swift}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for cpu in skylake-avx512 haswell; do
  scratch=.build-bundle-$cpu
  echo "bundle: building for $cpu" >&2
  "$SWIFT" build -c release -Xswiftc -target-cpu -Xswiftc "$cpu" --product stm-analyze --scratch-path "$scratch" >&2
  mkdir -p "$stage/bin/$cpu"
  cp "$scratch/release/stm-analyze" "$stage/bin/$cpu/"
done
mkdir -p "$stage/lib" "$stage/bench/pytorch"
# Every library the binaries load, by ldd, except the C library's own (the host's are used).
deps=$(ldd "$stage"/bin/*/stm-analyze)
if grep -q "not found" <<<"$deps"; then
  echo "bundle: a library the binaries load is missing here:" >&2
  grep "not found" <<<"$deps" >&2
  exit 1
fi
awk '/=> \// { print $1, $3 }' <<<"$deps" | sort -u | while read -r name path; do
  case "$name" in
    libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*) ;;
    *) cp -L "$path" "$stage/lib/$name" ;;
  esac
done
cp bench/pytorch/bench_torch.py bench/pytorch/unified.py "$stage/bench/pytorch/"
cp bench/bundle/run bench/bundle/tune_gemm.sh "$stage/"
chmod +x "$stage/run" "$stage/tune_gemm.sh"
git rev-parse --short HEAD > "$stage/COMMIT" 2>/dev/null || echo unknown > "$stage/COMMIT"
mkdir -p outputs/bundle
tar -cJf outputs/bundle/stm-analyze-bundle.tar.xz.part -C "$stage" .
mv outputs/bundle/stm-analyze-bundle.tar.xz.part outputs/bundle/stm-analyze-bundle.tar.xz
ls -l outputs/bundle/stm-analyze-bundle.tar.xz >&2
