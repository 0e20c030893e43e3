#!/usr/bin/env bash
# CI of the Kotlin runtime: the JUnit tests against the shared test vectors, then the CLI jar decoding a few golden
# inputs per bundle, compared with vectors.json (the Python runtime's outputs).
#   S2S_FIXTURES=/path/to/fixtures bash kotlin/ci.sh
set -euo pipefail
cd "$(dirname "$0")"

if [[ -z "${S2S_FIXTURES:-}" ]]; then
  echo "kotlin/ci.sh: S2S_FIXTURES is not set (a folder with bundles/ and vectors.json)" >&2
  exit 2
fi
if [[ ! -f "$S2S_FIXTURES/vectors.json" ]]; then
  echo "kotlin/ci.sh: $S2S_FIXTURES/vectors.json is missing (python tests/make_vectors.py $S2S_FIXTURES)" >&2
  exit 2
fi
export S2S_FIXTURES
GOLDEN=${GOLDEN:-12}   # inputs per bundle and path piped through the CLI

# Debian's Maven prints colour resets even with -q -B; keep the log plain (pipefail keeps mvn's status)
mvn() { command mvn "$@" 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g'; }

start=$SECONDS
t=$SECONDS
mvn -B -q test
echo "kotlin tests: $((SECONDS - t)) s"

t=$SECONDS
mvn -B -q package -DskipTests
jar=target/s2s-kotlin.jar
[[ -f $jar ]] || { echo "kotlin/ci.sh: $jar was not built" >&2; exit 1; }
echo "kotlin jar: $((SECONDS - t)) s ($(du -h "$jar" | cut -f1))"

t=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
checked=0
for bundle in digits numbers attention embeddings; do
  for path in one-call step-loop; do
    # the first GOLDEN inputs of the fp32 vectors of this path, and the Python runtime's single-input texts
    lines=(python3 ../tests/make_vectors.py --lines "$S2S_FIXTURES/vectors.json" "$bundle" fp32 "$path")
    "${lines[@]}" inputs > "$work/all.txt" && head -n "$GOLDEN" "$work/all.txt" > "$work/in.txt"
    "${lines[@]}" single > "$work/all.txt" && head -n "$GOLDEN" "$work/all.txt" > "$work/want.txt"
    flags=()
    [[ $path == step-loop ]] && flags+=(--step-loop)
    java -jar "$jar" "$S2S_FIXTURES/bundles/$bundle" "${flags[@]}" < "$work/in.txt" > "$work/got.txt"
    if ! diff -u "$work/want.txt" "$work/got.txt" > "$work/diff.txt"; then
      echo "kotlin/ci.sh: the CLI's outputs for $bundle ($path) differ from vectors.json:" >&2
      head -40 "$work/diff.txt" >&2
      exit 1
    fi
    checked=$((checked + $(wc -l < "$work/want.txt")))
  done
done
# a bad line (symbols the model never saw, then bytes that are not UTF-8): one error line on stderr naming it,
# status 2 (as the Python runtime's `s2s run`), no stack trace
for bad in '\xe2\x82\xac\xe2\x82\xac' '4\xff5'; do
  set +e
  printf "1\n$bad\n7\n" | java -jar "$jar" "$S2S_FIXTURES/bundles/digits" > /dev/null 2> "$work/err.txt"
  status=$?
  set -e
  if [[ $status -ne 2 ]] || [[ $(wc -l < "$work/err.txt") -ne 1 ]] || ! grep -q "line 2" "$work/err.txt" || grep -q "Exception" "$work/err.txt"; then
    echo "kotlin/ci.sh: a bad input line should give one error line naming line 2 and status 2; got status $status:" >&2
    cat "$work/err.txt" >&2
    exit 1
  fi
done
echo "kotlin cli: $((SECONDS - t)) s ($checked golden outputs match vectors.json)"
echo "kotlin total: $((SECONDS - start)) s"
