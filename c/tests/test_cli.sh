#!/usr/bin/env bash
# s2s-run as a user and an attacker use it: golden inputs through the command line (the Python runtime's strings,
# from $S2S_FIXTURES/vectors.json), a bad line named by its number, and tampered bundles refused with one line
# each, without hanging on a FIFO or reading through a link.
#   bash c/tests/test_cli.sh PATH/TO/s2s-run
set -uo pipefail
RUN=$(realpath "${1:?usage: test_cli.sh PATH/TO/s2s-run}")
: "${S2S_FIXTURES:?set S2S_FIXTURES to the test fixtures folder}"
PY=${PYTHON:-python3}
# Lines ONNX Runtime itself prints on stderr where the machine hides its CPU (the Pi stand-in, which has no /sys):
# set by the caller for that environment only; by default nothing is ignored.
NOISE=${S2S_CLI_STDERR_NOISE:-^$^}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 checks=0

errors() { grep -vE "$NOISE" "$tmp/err" || true; }

check_prefix() { # NAME EXPECTED-START ACTUAL
  check "$1" "$2" "${3:0:${#2}}"
}

check() { # NAME EXPECTED ACTUAL
  checks=$((checks + 1))
  if [ "$2" != "$3" ]; then
    fails=$((fails + 1))
    printf 'FAIL: %s\n  expected: %s\n  got:      %s\n' "$1" "$2" "$3" >&2
  fi
}

MAKE_VECTORS="$(dirname "$(realpath "$0")")/../../tests/make_vectors.py"
vector() { # BUNDLE VARIANT PATH FIELD -> one line per golden input ("inputs" or "single" texts)
  "$PY" "$MAKE_VECTORS" --lines "$S2S_FIXTURES/vectors.json" "$@"
}

# -- golden outputs through the command line
for spec in "digits fp32 one-call --one-call" "numbers fp32 step-loop" "attention int8 step-loop" \
            "attention fp32 one-call --one-call" "embeddings int8 step-loop" "embeddings fp32 one-call --one-call"; do
  set -- $spec
  # a spec the vectors do not hold fails (both sides empty would pass)
  if ! inputs=$(vector "$1" "$2" "$3" inputs) || ! want=$(vector "$1" "$2" "$3" single); then
    check "vectors.json holds $spec" "yes" "no"
    continue
  fi
  got=$(printf '%s\n' "$inputs" | "$RUN" "$S2S_FIXTURES/bundles/$1" --variant "$2" ${4:-} --batch-size 1)
  check "golden outputs: $spec" "$want" "$got"
done

# -- a caller that writes one line and waits gets its answer (the next line has not come yet; 20 s guard only)
coproc RUNNER { "$RUN" "$S2S_FIXTURES/bundles/digits" 2>/dev/null; }
printf '%s\n' "$(vector digits fp32 step-loop inputs | sed -n 1p)" >&"${RUNNER[1]}"
answer=""
read -t 20 -r answer <&"${RUNNER[0]}"
check "answers a line while the input is still open" "$(vector digits fp32 step-loop single | sed -n 1p)" "$answer"
exec {RUNNER[1]}>&-
wait "$RUNNER_PID"

# -- a line that cannot be encoded: the lines before it are decoded, then one message, exit 1
digits="$S2S_FIXTURES/bundles/digits"
first_two=$(vector digits fp32 step-loop inputs | sed -n 1,2p)
out=$(printf '%s\nz\n3\n' "$first_two" | "$RUN" "$digits" --batch-size 2 2>"$tmp/err"); rc=$?
check "bad line: exit code" 2 "$rc"
check "bad line: outputs before it" "$(vector digits fp32 step-loop single | sed -n 1,2p)" "$out"
check "bad line: message" "s2s-run: line 3: input has 1 symbol(s) the model never saw: 'z'" "$(errors)"
out=$(printf '%s\n1\0\n' "$first_two" | "$RUN" "$digits" 2>"$tmp/err")
check "NUL byte" "s2s-run: line 3: has a NUL byte" "$(errors)"
check "NUL byte: outputs before it" "$(vector digits fp32 step-loop single | sed -n 1,2p)" "$out"
printf '3\xff\n' | "$RUN" "$digits" >/dev/null 2>"$tmp/err"
check "not UTF-8" "s2s-run: line 1: not valid UTF-8: byte 0xFF at column 2" "$(errors)"
printf '%02000d\n' 1 | "$RUN" "$digits" >/dev/null 2>"$tmp/err"
check "long line" "s2s-run: line 1: input is 2000 characters long; the model takes at most 1 tokens" "$(errors)"
"$RUN" "$digits" --batch-size 0 </dev/null 2>"$tmp/err"; rc=$?
check "batch size 0" "2 s2s-run: --batch-size must be an integer from 1 to 4096, got '0'" "$rc $(errors)"

# -- tampered bundles: each is refused with one line naming the file (nothing hangs: a 20 s timeout each)
refused() { # NAME EXPECTED-MESSAGE BUNDLE [ARGS...]; a message ending in "..." is compared up to there
  local name=$1 want=$2 dir=$3
  shift 3
  timeout 20 "$RUN" "$dir" "$@" </dev/null >/dev/null 2>"$tmp/err"
  check "$name: exit code" 2 "$?"
  check "$name: one line" 1 "$(errors | wc -l)"
  if [ "${want: -3}" = "..." ]; then check_prefix "$name" "${want:0:-3}" "$(errors)"
  else check "$name" "$want" "$(errors)"; fi
}
fresh() { rm -rf "$tmp/b"; cp -r "$digits" "$tmp/b"; }
edit_manifest() { "$PY" -c "import json,sys; p=sys.argv[1]; m=json.load(open(p)); $1; json.dump(m, open(p,'w'))" "$tmp/b/manifest.json"; }
m=encoder.fp32.onnx
fresh; rm "$tmp/b/$m"; ln -s /etc/passwd "$tmp/b/$m"
refused "model file is a link" "s2s-run: $tmp/b/$m: is a symbolic link; a bundle's files must be regular files" "$tmp/b"
fresh; rm "$tmp/b/$m"; mkfifo "$tmp/b/$m"
refused "model file is a FIFO" "s2s-run: $tmp/b/$m: is not a regular file; a bundle's files must be regular files" "$tmp/b"
fresh; mv "$tmp/b/manifest.json" "$tmp/real.json"; ln -s "$tmp/real.json" "$tmp/b/manifest.json"
refused "manifest is a link" "s2s-run: $tmp/b/manifest.json: is a symbolic link; a bundle's files must be regular files" "$tmp/b"
fresh; "$PY" -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[len(b)//2]^=1; open(p,'wb').write(b)" "$tmp/b/$m"
refused "flipped byte" "s2s-run: $tmp/b/$m: model file's sha256 does not match the manifest (modified or corrupted: copy the bundle again)" "$tmp/b"
fresh; size=$(stat -c %s "$tmp/b/$m"); truncate -s $((size - 1)) "$tmp/b/$m"
refused "truncated" "s2s-run: $tmp/b/$m: model file is $((size - 1)) bytes, the manifest says $size (truncated, replaced or corrupted: copy the bundle again)" "$tmp/b"
fresh; truncate -s $((size + 4096)) "$tmp/b/$m"
refused "grown" "s2s-run: $tmp/b/$m: is $((size + 4096)) bytes, more than the $size allowed (replaced or corrupted: copy the bundle again)" "$tmp/b"
fresh; edit_manifest "m['models'][0]['path'] = '../../etc/passwd'"
refused "path out of the bundle" "s2s-run: $tmp/b/manifest.json: /models/0/path: must be a plain file name ([A-Za-z0-9][A-Za-z0-9._-]{0,127})" "$tmp/b"
fresh; edit_manifest "m['version'] = 2"
refused "format version 2" "s2s-run: $tmp/b/manifest.json: manifest format version 2 is not supported by this runtime (it reads version 1); upgrade the seq2seq-edge C library or re-export the bundle" "$tmp/b"
fresh; latent=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['model']['latent_dim'])" "$digits/manifest.json")
edit_manifest "m['models'][0]['outputs'][0]['shape'] = [-1, 7]"
refused "contract" "s2s-run: $tmp/b/manifest.json: models[0] ('$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['models'][0]['path'])" "$digits/manifest.json")'): outputs [state_c:float32[-1, $latent], state_h:float32[-1, 7]] contradict the contract [state_c:float32[-1, $latent], state_h:float32[-1, $latent]]" "$tmp/b"
fresh; sed -i 's/"version": 1/"version": 1, "version": 1/' "$tmp/b/manifest.json"
refused "duplicate key" "s2s-run: $tmp/b/manifest.json: the key 'version' appears twice in one object (the manifest's top level)" "$tmp/b"
fresh; head -c 100 "$digits/manifest.json" >"$tmp/b/manifest.json"
refused "manifest cut short" "s2s-run: $tmp/b/manifest.json: manifest is not valid JSON (at byte ..." "$tmp/b"
fresh; sed -i 's/"path": "encoder.fp32.onnx"/"path": "encoder.fp32.onnx\\u0000\/..\/x"/' "$tmp/b/manifest.json"
refused "NUL inside a path" "s2s-run: $tmp/b/manifest.json: manifest has a NUL character; no field of a bundle may hold one" "$tmp/b"
fresh; printf '\xef\xbb\xbf' | cat - "$digits/manifest.json" >"$tmp/b/manifest.json"
refused "byte order mark" "s2s-run: $tmp/b/manifest.json: manifest starts with a byte order mark (JSON has none)" "$tmp/b"
fresh; edit_manifest "m['models'][0]['ops'] = [1, 2]"
refused "ops that are not names" "s2s-run: $tmp/b/manifest.json: /models/0/ops: must be an array of at most 256 operator names (1 to 64 characters)" "$tmp/b"
fresh; edit_manifest "m['provenance'] = {'a': {'b': 1, 'b': 2}}"
sed -i 's/{"b": 2}/{"b": 1, "b": 2}/' "$tmp/b/manifest.json"
refused "a key twice, deep inside" "s2s-run: $tmp/b/manifest.json: the key 'b' appears twice in one object" "$tmp/b"
# a model whose weights are external data named "secret.bin" must not be read from the working directory (the
# file is there, with the right bytes); needs the onnx package (CI's .venv)
if "$PY" -c 'import onnx' 2>/dev/null; then
  fresh
  "$PY" - "$tmp/b" <<'EOF2'
import hashlib, json, sys, onnx
b = sys.argv[1]
m = onnx.load(f"{b}/decoder_step.fp32.onnx")
t = max(m.graph.initializer, key=lambda t: len(t.raw_data))
open("secret.bin", "wb").write(t.raw_data)
t.data_location = onnx.TensorProto.EXTERNAL
for k, v in (("location", "secret.bin"), ("offset", "0"), ("length", str(len(t.raw_data)))):
    e = t.external_data.add(); e.key, e.value = k, v
t.ClearField("raw_data")
data = m.SerializeToString()
open(f"{b}/decoder_step.fp32.onnx", "wb").write(data)
man = json.load(open(f"{b}/manifest.json"))
for e in man["models"]:
    if e["path"] == "decoder_step.fp32.onnx":
        e["size_bytes"], e["sha256"] = len(data), hashlib.sha256(data).hexdigest()
json.dump(man, open(f"{b}/manifest.json", "w"))
EOF2
  mv secret.bin "$tmp/secret.bin"
  cd "$tmp"  # not a subshell: the counters must see this check
  # refused from its bytes before ONNX Runtime sees it (ONNX Runtime is also told external data lives nowhere)
  refused "external data in the working directory" "s2s-run: $tmp/b/decoder_step.fp32.onnx: refers to external data for ['..." "$tmp/b"
  cd - >/dev/null
else
  echo "s2s-run: external-data case not run ($PY has no onnx package)"
fi
refused "no one-call int8 model" "s2s-run: $digits: the bundle has no one-call greedy model for onnx int8 (re-export it with a seq2seq-edge that writes one, or load with one_call = 0)" "$digits" --variant int8 --one-call
refused "no such variant" "s2s-run: variant must be fp32 or int8 (ONNX), got 'fp16'" "$digits" --variant fp16
refused "not a bundle" "s2s-run: $tmp/none: no such folder" "$tmp/none"
mkdir "$tmp/empty"
refused "a folder without a manifest" "s2s-run: $tmp/empty: no manifest.json: not a bundle folder (s2s export writes one)" "$tmp/empty"

echo "s2s-run: $checks checks, $fails failed"
[ "$fails" -eq 0 ]
