#!/usr/bin/env bash
# What CI runs for the C library (c/): fetch ONNX Runtime's header and library from the registries, build with
# CMake, run the shared test vectors and the command-line tests, then the vectors once more under valgrind (no leak,
# no invalid access). Needs S2S_FIXTURES with bundles/ and vectors.json (tests/make_vectors.py).
set -euo pipefail
cd "$(dirname "$0")"
: "${S2S_FIXTURES:?set S2S_FIXTURES to the test fixtures folder (bundles/ and vectors.json)}"
t0=$(date +%s)
need=()
for pkg in cmake gcc pkg-config libcjson-dev libutf8proc-dev libssl-dev valgrind unzip; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash fetch_onnxruntime.sh
# the CLI tests craft one model with the onnx package: the repository's training venv has it
if [ -z "${PYTHON:-}" ] && [ -x ../.venv/bin/python ]; then export PYTHON="$PWD/../.venv/bin/python"; fi
build=${S2S_C_BUILD:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
log=$(mktemp)
cmake --build "$build" -j2 >"$log" 2>&1 || { cat "$log"; rm -f "$log"; exit 1; }  # a failed build stops CI
grep -E 'warning|error' "$log" || true
rm -f "$log"
echo "c build: $(( $(date +%s) - t0 )) s"
t1=$(date +%s)
"$build/test_vectors"
bash tests/test_cli.sh "$build/s2s-run"
echo "c tests: $(( $(date +%s) - t1 )) s"
t2=$(date +%s)
valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite,indirect \
  --suppressions=tests/onnxruntime.supp "$build/test_vectors" --quick | tail -1
echo "c tests under valgrind (digits bundle, text vectors, failed loads): $(( $(date +%s) - t2 )) s"
