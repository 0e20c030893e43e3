"""A bundle from a stranger is data: each test crafts one attack and loads the bundle the way a user would (the
``s2s`` command in a child process, with a memory limit and a timeout), expecting the one-line error.

Every attack here works on re-signed bundles (sha256 and size updated in the manifest), so only the loader's own
checks stand in the way. The ONNX attacks are crafted with hand-made protobuf bytes (tests/craft.py), so they run
in the runtime-only venvs too; a few need the onnx package or TensorFlow to build a model and skip without them.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import craft
import seq2seq_edge
from seq2seq_edge import backends
from seq2seq_edge import manifest as mf
from seq2seq_edge import probe, text
from seq2seq_edge.errors import BundleError
from support import (S2S, TFLITE_BACKEND, assert_refused, copy_bundle, edit_manifest, resign,
                     s2s_limited, stderr_lines)

HAS_ONNX = backends.is_installed("onnx")
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="needs onnxruntime")
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
needs_onnx_package = pytest.mark.skipif(not HAS_ONNX or importlib.util.find_spec("onnx") is None,
                                        reason="needs onnx to build the model, and onnxruntime")
needs_tflite = pytest.mark.skipif(TFLITE_BACKEND is None, reason="needs a TFLite interpreter")


def models_loaded(backend: str) -> int:
    """Model files a default load reads on ``backend``: encoder, step, and on TFLite the greedy model."""
    return 3 if backends.BACKENDS[backend].format in seq2seq_edge.loader.ONE_CALL_BY_DEFAULT else 2


# ---- 1. code in the working directory ------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", [b for b in ("tflite", "litert", "onnx") if backends.is_installed(b)])
def test_code_in_the_bundle_folder_is_never_run(digits_bundle, tmp_path, backend):
    """`cd bundle && s2s run . 7`: modules named like the ones the runtime and its probe import, placed in the
    working directory (here the bundle itself), must never be imported."""
    bundle = copy_bundle(digits_bundle, tmp_path)
    marker = tmp_path / "ran"
    payload = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    for name in ("numpy", "onnxruntime", "ai_edge_litert", "tflite_runtime", "seq2seq_edge", "json", "hashlib"):
        (bundle / f"{name}.py").write_text(payload)
    proc = s2s_limited("run", ".", "7", "--backend", backend, cwd=bundle, cache=tmp_path / "cache")
    assert proc.stdout == b"seven\n", stderr_lines(proc)
    assert not marker.exists(), marker.read_text()
    assert len(json.loads((tmp_path / "cache/seq2seq-edge/verified.json").read_text())["entries"]) == models_loaded(
        backend)


# ---- 2. external data that ONNX Runtime would read --------------------------------------------------------------
@needs_onnx
@pytest.mark.parametrize("where", ["constant-in-function", "function-attribute-default"])
def test_onnx_external_data_inside_functions_is_refused(digits_bundle, tmp_path, where):
    bundle = copy_bundle(digits_bundle, tmp_path)
    (bundle / "secret.bin").write_bytes(b"\x00\x00\x80\x7f" * 4)  # what the attacker wants read
    tensor = craft.external_tensor("w", "secret.bin")
    if where == "constant-in-function":
        fn = craft.function("f", [craft.constant_node("out", tensor)])
    else:
        fn = craft.function("f", [], attribute_defaults=[craft.ld(1, "w") + craft.ld(5, tensor) + craft.vi(20, 4)])
    name = "decoder_step.fp32.onnx"
    resign(bundle, name, craft.with_function((bundle / name).read_bytes(), fn))
    proc = s2s_limited("run", bundle, "7", "--backend", "onnx", cwd=bundle, cache=tmp_path / "cache")
    assert_refused(proc, rf"{name}: 2 problems: refers to external data for \['w'\]; bundle models must embed "
                         r"their weights \(external data is refused\); defines model-local functions \['f'\]")


# ---- 3. the probe checks the bytes that are loaded, and its cache is not trusted blindly ---------------------------
def test_a_fifo_where_a_model_belongs_is_refused_without_opening_it(digits_bundle, tmp_path):
    bundle = copy_bundle(digits_bundle, tmp_path)
    for m in mf.BundleManifest.load(bundle).models:
        (bundle / m.path).unlink()
        os.mkfifo(bundle / m.path)
    started = time.monotonic()
    proc = s2s_limited("run", bundle, "7", cache=tmp_path / "cache", timeout=30)
    assert_refused(proc, r"encoder\.fp32\.\w+: model file is a FIFO, not a regular file")
    assert time.monotonic() - started < 20


def _write_cache(cache: Path, content: bytes, mode: int = 0o600) -> Path:
    path = cache / "seq2seq-edge" / "verified.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(mode)
    return path


def _forged_entries(bundle: Path) -> dict:
    """Cache entries claiming that every model of the bundle passed, for every backend and thread count."""
    out = {}
    for m in mf.BundleManifest.load(bundle).models:
        for backend in backends.BACKENDS:
            for x in ("True", "batched"):
                out[probe._key(backend, m.sha256, 1, x if x == "batched" else True)] = {"batches": [1, 2]}
    return out


@pytest.mark.parametrize("kind", ["not-json", "another-format", "group-writable", "symlink", "huge"])
def test_a_foreign_verified_cache_is_ignored_with_a_warning(digits_bundle, tmp_path, kind):
    bundle = copy_bundle(digits_bundle, tmp_path)
    cache = tmp_path / "cache"
    forged = json.dumps({"format": "seq2seq-edge-verified", "version": 2,
                         "entries": _forged_entries(bundle)}).encode()
    if kind == "not-json":
        path = _write_cache(cache, b"\xff\xfe not json")
    elif kind == "another-format":
        path = _write_cache(cache, json.dumps(sorted(_forged_entries(bundle))).encode())
    elif kind == "group-writable":
        path = _write_cache(cache, forged, 0o666)
    elif kind == "symlink":
        (tmp_path / "elsewhere.json").write_bytes(forged)
        path = cache / "seq2seq-edge" / "verified.json"
        path.parent.mkdir(parents=True)
        path.symlink_to(tmp_path / "elsewhere.json")
    else:
        path = _write_cache(cache, b"{" + b" " * (5 * 2**20) + b"}")
    proc = s2s_limited("run", bundle, "7", cache=cache)
    assert proc.returncode == 0 and proc.stdout == b"seven\n", stderr_lines(proc)
    warnings = [line for line in stderr_lines(proc) if "verified.json" in line]
    assert warnings and re.match(rf"ignoring {re.escape(str(path))} \(.+\); model files will be probed again",
                                 warnings[0]), warnings
    if kind != "symlink":  # the probe ran and the runtime wrote its own cache in place of the foreign one
        entries = json.loads(path.read_text())["entries"]
        assert len(entries) == models_loaded(TFLITE_BACKEND or "onnx")
        assert all(e["batches"] == [1, 2] for e in entries.values())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the cache file to another user")
def test_a_verified_cache_owned_by_another_user_is_ignored(digits_bundle, tmp_path):
    cache = tmp_path / "cache"
    forged = {"format": "seq2seq-edge-verified", "version": 2, "entries": _forged_entries(digits_bundle)}
    path = _write_cache(cache, json.dumps(forged).encode())
    os.chown(path, 65534, 65534)
    proc = s2s_limited("run", digits_bundle, "7", cache=cache)
    assert proc.stdout == b"seven\n"
    assert any("owned by another user or writable by others" in line for line in stderr_lines(proc))


def test_concurrent_first_loads_keep_each_others_cache_entries(digits_bundle, numbers_bundle, tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    jobs = [(digits_bundle, v) for v in ("fp32", "int8")] + [(numbers_bundle, v) for v in ("fp32", "int8")]
    procs = [subprocess.Popen([str(S2S), "run", str(b), "--variant", v, "7"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for b, v in jobs]
    for p in procs:
        p.communicate(timeout=120)
    assert [p.returncode for p in procs] == [0] * 4
    entries = json.loads((cache / "seq2seq-edge/verified.json").read_text())["entries"]
    shas = {m.sha256 for b, v in jobs for m in mf.BundleManifest.load(b).models
            if m.variant == v and m.format == backends.BACKENDS[_auto_backend(b, v)].format
            and (m.role != mf.GREEDY or m.format in seq2seq_edge.loader.ONE_CALL_BY_DEFAULT)}
    assert {k.split()[2] for k in entries} == shas
    assert all(e["batches"] == list(probe.PROBE_BATCHES) and "threads=1" in k for k, e in entries.items())


def _auto_backend(bundle: Path, variant: str) -> str:
    manifest = mf.BundleManifest.load(bundle)
    return next(b for b in backends.AUTO_ORDER if backends.is_installed(b)
                and variant in manifest.variants(backends.BACKENDS[b].format))


# ---- 4. reads have bounds ---------------------------------------------------------------------------------------------
def _model_file(bundle: Path) -> str:
    fmt = backends.BACKENDS[_auto_backend(bundle, "fp32")].format
    return f"encoder.fp32.{fmt}"


@pytest.mark.parametrize("kind, pattern", [
    ("symlink to /dev/zero", "model file is a symbolic link; bundle files must be regular files inside the bundle"),
    ("symlink to /dev/urandom", "model file is a symbolic link"),
    ("symlink to a model outside the bundle", "model file is a symbolic link"),
    ("folder", "model file is a folder, not a regular file"),
    ("sparse 1 GB file", r"model file is 1000000000 bytes, the manifest says \d+ \(truncated or replaced\)"),
])
def test_model_files_are_regular_files_of_the_declared_size(digits_bundle, tmp_path, kind, pattern):
    bundle = copy_bundle(digits_bundle, tmp_path)
    name = _model_file(bundle)
    outside = tmp_path / "outside" / name
    outside.parent.mkdir()
    shutil.move(bundle / name, outside)
    target = bundle / name
    if kind.startswith("symlink"):
        target.symlink_to({"symlink to /dev/zero": "/dev/zero", "symlink to /dev/urandom": "/dev/urandom"}.get(
            kind, str(outside)))
    elif kind == "folder":
        target.mkdir()
    else:
        with open(target, "wb") as f:
            f.truncate(10**9)
    proc = s2s_limited("run", bundle, "7", cache=tmp_path / "cache", timeout=30)
    assert_refused(proc, re.escape(str(target)) + ": " + pattern)


@pytest.mark.parametrize("kind, pattern", [
    ("symlink to /dev/zero", "manifest is a symbolic link"),
    ("fifo", "manifest is a FIFO, not a regular file"),
    ("sparse 1 GB file", r"manifest is 1000000000 bytes, more than the 16777216 bytes allowed"),
    ("deeply nested", r"manifest is (nested too deeply|not valid JSON)"),
])
def test_the_manifest_is_capped_and_read_only_if_regular(digits_bundle, tmp_path, kind, pattern):
    bundle = copy_bundle(digits_bundle, tmp_path)
    path = bundle / mf.MANIFEST_FILE
    path.unlink()
    if kind == "symlink to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "deeply nested":
        path.write_text("[" * 200_000 + "]" * 200_000)
    else:
        with open(path, "wb") as f:
            f.truncate(10**9)
    proc = s2s_limited("run", bundle, "7", cache=tmp_path / "cache", timeout=30)
    assert_refused(proc, re.escape(str(path)) + ": " + pattern)


# ---- 5. ops are an allowlist, work is bounded --------------------------------------------------------------------
@needs_onnx
def test_onnx_control_flow_is_refused_before_onnx_runtime(digits_bundle, tmp_path):
    bundle = copy_bundle(digits_bundle, tmp_path)
    name = "decoder_step.fp32.onnx"
    content = craft.with_graph_nodes((bundle / name).read_bytes(), [craft.loop_node()])
    ops = sorted(set(mf.BundleManifest.load(bundle).find("decoder_step", "onnx", "fp32").ops) | {"Loop"})
    resign(bundle, name, content, ops=ops)
    proc = s2s_limited("run", bundle, "7", "--backend", "onnx", cache=tmp_path / "cache", timeout=30)
    assert_refused(proc, rf"{name}: holds a Loop whose trip count M is not a constant of the main graph")


@needs_onnx
def test_onnx_ops_outside_the_role_or_the_manifest_are_refused(digits_bundle, tmp_path):
    bundle = copy_bundle(digits_bundle, tmp_path)
    name = "decoder_step.fp32.onnx"
    extra = craft.ld(1, "state_h") + craft.ld(2, "extra") + craft.ld(4, "RandomNormalLike")
    resign(bundle, name, craft.with_graph_nodes((bundle / name).read_bytes(), [extra]))
    proc = s2s_limited("run", bundle, "7", "--backend", "onnx", cache=tmp_path / "cache", timeout=30)
    assert_refused(proc, rf"{name}: 2 problems: uses operators a decoder_step may not have: \['RandomNormalLike'\] "
                         r"\(allowed: .*\); its operators .* differ from the manifest's list")


@needs_tflite
def test_tflite_ops_must_equal_the_manifests_list(digits_bundle, tmp_path):
    bundle = copy_bundle(digits_bundle, tmp_path)

    def change(d):
        for m in d["models"]:
            if m["path"] == "decoder_step.fp32.tflite":
                m["ops"] = [op for op in m["ops"] if op != "SOFTMAX"]
    edit_manifest(bundle, change)
    proc = s2s_limited("run", bundle, "7", "--backend", TFLITE_BACKEND, cache=tmp_path / "cache", timeout=30)
    assert_refused(proc, r"decoder_step\.fp32\.tflite: its operators \[.*'SOFTMAX'.*\] differ from the manifest's "
                         r"list \[(?!.*SOFTMAX).*\]")


@pytest.mark.skipif(TFLITE_BACKEND is None or not HAS_TENSORFLOW, reason="needs TensorFlow to build a WHILE loop")
def test_tflite_while_loop_in_the_step_is_refused_before_the_interpreter(digits_bundle, tmp_path):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, 32], tf.float32),
                                  tf.TensorSpec([None, 32], tf.float32)])
    def step(prev_token, state_h, state_c):
        h = tf.while_loop(lambda i, h: i < 10**9, lambda i, h: (i + 1, h * 1.0001), (0, state_h))[1]
        return {"probs": tf.nn.softmax(tf.zeros([tf.shape(prev_token)[0], 20])), "next_state_h": h,
                "next_state_c": state_c}

    content = tf.lite.TFLiteConverter.from_concrete_functions([step.get_concrete_function()]).convert()
    bundle = copy_bundle(digits_bundle, tmp_path)
    resign(bundle, "decoder_step.fp32.tflite", content)
    proc = s2s_limited("run", bundle, "7", "--backend", TFLITE_BACKEND, cache=tmp_path / "cache", timeout=30)
    # A counted loop is provably bounded, but a decoder step may hold no loop at all: its WHILE is outside the
    # step's operators, and its bound (10**9) above the step's limit (0).
    assert_refused(proc, r"decoder_step\.fp32\.tflite: \d problems: has a loop of up to 1000000000 steps; a "
                         r"decoder_step of this bundle may loop at most 0 times; uses operators a decoder_step may not "
                         r"have: \[.*'WHILE'.*\]")


@pytest.mark.parametrize("field, value, pattern", [
    ("encoder_time_steps", 10**12, r"model\.encoder_time_steps must be an integer from 1 to 4096, got 1000000000000"),
    ("latent_dim", 2**40, r"model\.latent_dim must be an integer from 1 to 16384"),
])
def test_absurd_sizes_in_the_manifest_are_refused(digits_bundle, tmp_path, field, value, pattern):
    bundle = copy_bundle(digits_bundle, tmp_path)
    edit_manifest(bundle, lambda d: d["model"].__setitem__(field, value))
    proc = s2s_limited("run", bundle, "7", cache=tmp_path / "cache", timeout=30)
    assert_refused(proc, pattern)


@needs_onnx_package
def test_a_dynamic_time_axis_is_refused(digits_bundle, tmp_path):
    import onnx

    bundle = copy_bundle(digits_bundle, tmp_path)
    name = "encoder.fp32.onnx"
    proto = onnx.load(bundle / name)
    dim = proto.graph.input[0].type.tensor_type.shape.dim[1]
    dim.ClearField("dim_value")
    dim.dim_param = "time"
    resign(bundle, name, proto.SerializeToString())
    proc = s2s_limited("run", bundle, "7", "--backend", "onnx", cache=tmp_path / "cache", timeout=30)
    assert_refused(proc, rf"{name}: input 'input_ids' has shape \[-1, -1\] in the model, \[-1, 1\] in the manifest")


def _rename_output(graph, name: str, new: str) -> None:
    """Make the node that produces the graph output ``name`` produce ``new`` instead (for nodes added after it)."""
    producer = next(n for n in graph.node if name in n.output)
    producer.output[list(producer.output).index(name)] = new


@needs_onnx_package
def test_outputs_wider_than_the_contract_at_run_time_are_refused(digits_bundle, tmp_path):
    """A decoder step that declares probs [N, V] (and ONNX Runtime's shape inference agrees), but returns
    [N, V + 1 + prev_token] when it runs: the width depends on the data, so only a check at run time sees it."""
    import onnx
    from onnx import TensorProto, helper

    bundle = copy_bundle(digits_bundle, tmp_path)
    name = "decoder_step.fp32.onnx"
    proto = onnx.load(bundle / name)
    graph = proto.graph
    _rename_output(graph, "probs", "probs_inner")
    graph.initializer.extend([helper.make_tensor(n, TensorProto.INT64, [1], [v])
                              for n, v in (("c0", 0), ("c1", 1), ("axis1", 1))])
    graph.node.extend([
        helper.make_node("Slice", ["prev_token", "c0", "c1"], ["first_token"]),
        helper.make_node("Cast", ["first_token"], ["first_token_64"], to=TensorProto.INT64),
        helper.make_node("Add", ["first_token_64", "c1"], ["width"]),
        helper.make_node("Slice", ["probs_inner", "c0", "width", "axis1"], ["extra"]),
        helper.make_node("Concat", ["probs_inner", "extra"], ["probs"], axis=1),
    ])
    ops = sorted(set(mf.BundleManifest.load(bundle).find("decoder_step", "onnx", "fp32").ops)
                 | {"Slice", "Cast", "Concat"})
    resign(bundle, name, proto.SerializeToString(), ops=ops)
    proc = s2s_limited("run", bundle, "7", "--backend", "onnx", cache=tmp_path / "cache", timeout=30)
    assert_refused(proc, rf"{name}: output 'probs' came back with shape \[1, 18\] at batch 1; the manifest gives "
                         r"\[1, 17\]")


@needs_onnx_package
def test_a_memory_bomb_is_refused_by_the_shape_proof_and_stopped_by_the_probes_limits(digits_bundle, tmp_path):
    """An encoder that fills 10 GB (ConstantOfShape, an op the encoder may use) before it returns its state: the
    shape proof refuses it from the bytes; the probe, the second line, stops it within its limits on its own."""
    import onnx
    from onnx import TensorProto, helper

    bundle = copy_bundle(digits_bundle, tmp_path)
    name = "encoder.fp32.onnx"
    proto = onnx.load(bundle / name)
    graph = proto.graph
    _rename_output(graph, "state_h", "state_h_inner")
    graph.initializer.extend([helper.make_tensor("bomb_shape", TensorProto.INT64, [2], [50_000, 50_000]),
                              helper.make_tensor("zero_starts", TensorProto.INT64, [2], [0, 0]),
                              helper.make_tensor("one_ends", TensorProto.INT64, [2], [1, 1])])
    graph.node.extend([
        helper.make_node("ConstantOfShape", ["bomb_shape"], ["bomb"]),
        helper.make_node("Slice", ["bomb", "zero_starts", "one_ends"], ["bomb_1"]),
        helper.make_node("Add", ["state_h_inner", "bomb_1"], ["state_h"]),
    ])
    content = proto.SerializeToString()
    resign(bundle, name, content, ops=sorted(backends.model_ops("onnx", content)))
    proc = s2s_limited("run", bundle, "7", "--backend", "onnx", cache=tmp_path / "cache", timeout=120)
    assert_refused(proc, rf"{name}: holds a tensor \('bomb'\) of 2500000000 elements, more than the bundle's shapes "
                         r"allow \(768 per batch row, 4096 in all without the batch; refused\)$")
    started = time.monotonic()
    with pytest.raises(BundleError, match=r"(alloc|memory)"):
        probe._run_child("onnx", [(name, content, True)], 1)
    assert time.monotonic() - started < 60


# ---- 6. validation is linear -----------------------------------------------------------------------------------------
def test_a_huge_vocabulary_is_validated_in_linear_time(digits_bundle, tmp_path):
    bundle = copy_bundle(digits_bundle, tmp_path)

    def change(d):
        d["preprocessing"]["input"]["vocabulary"] = list(text.SPECIAL_TOKENS) + [f"t{i}" for i in range(250_000)] * 2
    edit_manifest(bundle, change)
    started = time.monotonic()
    proc = s2s_limited("run", bundle, "7", cache=tmp_path / "cache", timeout=60)
    assert_refused(proc, r"input\.vocabulary has 500003 entries, more than the 262144 allowed")
    assert time.monotonic() - started < 30

    def change2(d):
        d["preprocessing"]["input"]["vocabulary"] = list(text.SPECIAL_TOKENS) + ["a"] * 250_000
    edit_manifest(bundle, change2)
    proc = s2s_limited("run", bundle, "7", cache=tmp_path / "cache", timeout=60)
    assert_refused(proc, r"input\.vocabulary has duplicate entries: 'a'")


# ---- 7. wrong types give the one-line error, never a traceback ----------------------------------------------------
WRONG_VALUES = [None, math.nan, math.inf, -1, 0, 2**70, "x", "", "\x00", [], {}, True, [1, [2]], {"a": {}}]


def _paths(value, prefix=()):
    """Every key path of a manifest, with vocabularies cut to their first four entries."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:4]):
            yield from _paths(v, prefix + (i,))


def test_any_wrong_type_anywhere_in_the_manifest_is_a_bundle_error(digits_bundle):
    good = json.loads((digits_bundle / mf.MANIFEST_FILE).read_text())
    tried = 0
    for path in list(_paths(good))[1:]:
        for wrong in WRONG_VALUES:
            d = json.loads(json.dumps(good))
            node = d
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = wrong
            try:
                mf.BundleManifest.from_dict(d)
            except BundleError:
                pass
            tried += 1
    assert tried > 1000


@pytest.mark.parametrize("change, pattern", [
    (lambda d: d["models"][0].__setitem__("path", "encoder\x00.tflite"), r"must be a plain file name"),
    (lambda d: d["models"][0].__setitem__("path", "../encoder.fp32.tflite"), r"must be a plain file name"),
    (lambda d: d["models"][0].__setitem__("size_bytes", "12"), r"size_bytes must be an integer"),
    (lambda d: d.__setitem__("version", [1]), r"manifest format version \[1\] is not supported"),
    (lambda d: d["models"][0].__setitem__("role", ["encoder"]), r"role must be one of"),
    (lambda d: d["models"][0]["inputs"][0].__setitem__("shape", [-1, 1.5]), r"inputs and outputs must be lists"),
])
def test_wrong_types_in_the_manifest_give_one_line(digits_bundle, tmp_path, change, pattern):
    bundle = copy_bundle(digits_bundle, tmp_path)
    edit_manifest(bundle, change)
    proc = s2s_limited("run", bundle, "7", cache=tmp_path / "cache", timeout=30)
    assert_refused(proc, pattern)


def test_nan_in_the_manifest_is_refused(digits_bundle, tmp_path):
    bundle = copy_bundle(digits_bundle, tmp_path)
    path = bundle / mf.MANIFEST_FILE
    path.write_text(path.read_text().replace('"latent_dim": 32', '"latent_dim": NaN'))
    with pytest.raises(BundleError, match=r"model\.latent_dim must be an integer from 1 to 16384, got nan"):
        seq2seq_edge.load(bundle)


# ---- the readers that look at model bytes before any interpreter ----------------------------------------------------
@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_model_readers_refuse_malformed_bytes_cleanly_and_quickly(digits_bundle, numbers_bundle, fmt):
    """20,000 mutations of real model files: the readers in front of the interpreters raise only BundleError (the
    loader's clear error) and finish quickly, whatever the bytes."""
    import random

    rng = random.Random(7)
    originals = [(b / m.path).read_bytes() for b in (digits_bundle, numbers_bundle)
                 for m in mf.BundleManifest.load(b).models if m.format == fmt]
    started, refused = time.monotonic(), 0
    for i in range(20_000):
        data = bytearray(rng.choice(originals))
        kind = i % 4
        if kind == 0:
            for _ in range(rng.choice((1, 4, 32))):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:
            del data[rng.randrange(len(data)):]
        elif kind == 2:  # a 32-bit word set to a large or negative offset, where flatbuffers keep offsets
            pos = rng.randrange(0, min(len(data), 4096) - 4) & ~3
            data[pos:pos + 4] = rng.choice((b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xfc\xff\xff\xff"))
        else:
            data = bytearray(rng.randbytes(rng.randrange(1, 512)))
        try:
            backends.model_ops(fmt, bytes(data))
        except BundleError:
            refused += 1
    assert refused > 5_000
    assert time.monotonic() - started < 120


def test_tflite_reader_names_ops_as_the_converter_does(digits_bundle, numbers_bundle):
    from seq2seq_edge.backends import tflite_wire

    for bundle in (digits_bundle, numbers_bundle):
        for m in mf.BundleManifest.load(bundle).models:
            if m.format == "tflite":
                assert tflite_wire.summarize((bundle / m.path).read_bytes()).ops == set(m.ops)
    if HAS_TENSORFLOW:  # every name the reader knows has the code TensorFlow's own schema gives it
        from tensorflow.lite.python import schema_py_generated as schema

        assert {code: getattr(schema.BuiltinOperator, name) for code, name in tflite_wire.BUILTIN_NAMES.items()} \
            == {code: code for code in tflite_wire.BUILTIN_NAMES}


def test_a_probe_that_runs_out_of_time_refuses_the_file(digits_bundle, tmp_path, monkeypatch):
    """The wall-clock timeout of the test process (here cut to 10 ms, less than starting Python takes)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(probe, "PROBE_TIMEOUT_S", 0.01)
    with pytest.raises(BundleError, match=r"encoder\.fp32\.\w+: loading and running it once took longer than 0\.01 s "
                                          r"in a test process; it was not loaded here"):
        seq2seq_edge.load(digits_bundle)
    assert not (tmp_path / "cache" / "seq2seq-edge" / "verified.json").exists()


# ---- outputs no honest model emits ------------------------------------------------------------------------------------
@pytest.mark.parametrize("one_call", [True, False])
@pytest.mark.parametrize("ids, prob, pattern", [
    ([5, text.PAD_ID, 6, text.END_ID], 0.9, r"the model chose the reserved id 0 at step 2 of item 1 \(only the end id "
                                            r"2 may end an output\)"),
    ([text.START_ID, text.END_ID], 0.9, r"the model chose the reserved id 1 at step 1 of item 1"),
    ([5, text.END_ID], math.nan, r"the model gave a probability of nan \(not a probability in \[0, 1\]\)"),
    ([5, text.END_ID], -0.5, r"the model gave a probability of -0.5 "),
    ([5, text.END_ID], math.inf, r"the model gave a probability of inf "),
])
def test_reserved_ids_and_impossible_probabilities_are_errors_naming_the_model(numbers_bundle, one_call, ids, prob,
                                                                                pattern):
    """A crafted or broken model that emits the pad or start id inside an output, or a probability that is not one,
    is refused with the model's name, through the one-call model and the step loop alike."""
    import numpy as np

    decoder = seq2seq_edge.load(numbers_bundle, backend=TFLITE_BACKEND or "onnx", one_call=True)
    vocab = len(decoder.preprocessing.target_vocabulary)
    if one_call:
        model = decoder.internals.greedy_model
        out_ids = np.array([ids + [0] * (decoder.preprocessing.max_output_tokens + 1 - len(ids))], np.int32)
        model.run = lambda feeds: {mf.OUTPUT_IDS: out_ids, mf.OUTPUT_PROBS: np.where(out_ids > 0, prob, 0).astype(
            np.float32) if not math.isnan(prob) else np.full(out_ids.shape, prob, np.float32)}
    else:
        decoder = decoder.internals.with_step_loop()
        model, real, step = decoder.internals.decoder_step, decoder.internals.decoder_step.run, iter(ids)

        def run(feeds):  # the chosen id with probability ``prob``, every other id below it
            out = dict(real(feeds))
            probs = np.full((1, vocab), -1.0 if prob < 0 else 0.0, np.float32)
            probs[0, next(step)] = prob
            out[mf.PROBS] = probs
            return out
        model.run = run
    with pytest.raises(BundleError, match=pattern) as e:
        decoder.decode("12")
    assert str(e.value).startswith(str(model.label))


# ---- shipping a bundle to a cluster (ray_predictor.pack_bundle and its unpacking) ----------------------------------
@pytest.mark.parametrize("kind, pattern", [
    ("symlink", r"model file is a symbolic link"),
    ("fifo", r"model file is a FIFO, not a regular file"),
    ("bigger", r"model file is \d+ bytes, the manifest says \d+"),
])
def test_packing_a_bundle_reads_only_its_regular_files(digits_bundle, tmp_path, kind, pattern):
    from seq2seq_edge.scale.ray_predictor import pack_bundle

    bundle = copy_bundle(digits_bundle, tmp_path)
    target = bundle / "decoder_step.fp32.onnx"
    target.unlink()
    if kind == "symlink":
        target.symlink_to("/etc/passwd")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.write_bytes(b"\0" * 10**6)
    with pytest.raises(BundleError, match=pattern):
        pack_bundle(bundle)


@pytest.mark.parametrize("files, pattern", [
    ({"": b"x"}, r"shipped bundle file name '' is not a plain file name"),
    ({"a\0b": b"x"}, r"is not a plain file name"),
    ({"../escape": b"x"}, r"is not a plain file name"),
    ({".hidden": b"x"}, r"is not a plain file name"),
    ({"m.onnx": "text"}, r"shipped bundle file 'm.onnx' is str, not bytes"),
    ({f"f{i}": b"" for i in range(1000)}, r"a shipped bundle is a dict of 1 to \d+ files"),
    ([], r"a shipped bundle is a dict of 1 to \d+ files, got list"),
])
def test_unpacking_a_shipped_bundle_checks_it_and_leaves_nothing_behind(tmp_path, monkeypatch, files, pattern):
    import tempfile

    from seq2seq_edge.scale.ray_predictor import BundlePredictor

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(BundleError, match=pattern):
        BundlePredictor(bundle_files=files)
    assert list(tmp_path.iterdir()) == []


def test_a_shipped_bundle_that_does_not_load_leaves_nothing_behind(digits_bundle, tmp_path, monkeypatch):
    import tempfile

    from seq2seq_edge.scale.ray_predictor import BundlePredictor, pack_bundle

    files = pack_bundle(digits_bundle)
    files["manifest.json"] = files["manifest.json"][:-10]  # cut short on the way: no backend can load it
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with pytest.raises(BundleError, match="manifest is not valid JSON"):
        BundlePredictor(bundle_files=files)
    assert list((tmp_path / "tmp").iterdir()) == []
