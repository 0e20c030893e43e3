#!/usr/bin/env bash
# What CI runs for the JavaScript runtime (js/). Called by .ci/run with S2S_FIXTURES set to the fixtures folder
# (bundles/digits, numbers, attention, embeddings with golden.json) and the repository's .venv built (the tests compare int8
# and fp16 outputs with the Python runtime's: S2S_PYTHON, default ../.venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")"
: "${S2S_FIXTURES:?set S2S_FIXTURES to the test fixtures folder (bundles/digits, numbers, attention, embeddings)}"
export S2S_PYTHON="${S2S_PYTHON:-$PWD/../.venv/bin/python}"
t0=$(date +%s)
node -e 'if (+process.versions.node.split(".")[0] < 20) { console.error(`node ${process.version}: need 20 or newer`); process.exit(1); }'
# Debian's Chromium for the browser test (playwright-core drives it; nothing downloads a browser).
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# onnxruntime-node's install script would fetch CUDA binaries from a host this machine cannot reach: js/.npmrc
# skips it, so a plain `npm ci` works offline; the CPU binaries are in the npm package.
npm ci --no-audit --no-fund  # .npmrc: onnxruntime-node-install=skip
echo "npm ci: $(( $(date +%s) - t0 )) s"
t1=$(date +%s)
node --test --test-reporter=spec test/node.test.js
echo "js node tests: $(( $(date +%s) - t1 )) s"
t2=$(date +%s)
node --test --test-reporter=spec test/browser.test.js
echo "js browser tests ($(/usr/bin/chromium --version 2>/dev/null)): $(( $(date +%s) - t2 )) s; screenshot: js/test-artifacts/demo.png"
