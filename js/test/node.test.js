// The JavaScript runtime on onnxruntime-node against the exporter's golden strings and the Python runtime.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test, before, after } from 'node:test';
import {
  BundleError, InputTextError, OptionError, BundleManifest, loadBundleFromDir, manifestProblems,
} from '../src/node.js';
import * as ort from 'onnxruntime-node';
import { checkModelOps, onnxRuntimeEngine } from '../src/index.js';
import { BUNDLES, JS_DIR, PYTHON, bundleDir, copyBundle, crafted, golden, pythonReference, vectors } from './helpers.js';

for (const name of BUNDLES) {
  for (const variant of ['fp32', 'int8']) {
    describe(`${name} onnx ${variant}`, () => {
      let decoder;
      const items = golden(name);
      const inputs = items.map((x) => x.input);
      before(async () => { decoder = await loadBundleFromDir(bundleDir(name), { variant }); });
      after(async () => decoder.release());

      if (variant === 'fp32') {
        test('decodes every golden input to the exporter\'s string, batched and one by one', async () => {
          assert.deepEqual(await decoder.decodeBatch(inputs), items.map((x) => x.output));
          const single = [];
          for (const x of inputs) single.push(await decoder.decode(x));
          assert.deepEqual(single, items.map((x) => x.output));
        });
      } else {
        test('decodes every golden input as the Python runtime does (onnxruntime, int8)', async () => {
          const ref = pythonReference(name, 'onnx', variant);
          assert.deepEqual(await decoder.decodeBatch(inputs), ref.batch);
          const single = [];
          for (const x of inputs) single.push(await decoder.decode(x));
          assert.deepEqual(single, ref.single);
        });
      }

      test('the one-call greedy model, where the bundle has one, gives the step loop\'s results', async () => {
        const manifest = JSON.parse(readFileSync(path.join(bundleDir(name), 'manifest.json'), 'utf8'));
        const hasGreedy = manifest.models.some((m) => m.role === 'greedy' && m.format === 'onnx' && m.variant === variant);
        assert.equal(decoder.decodePath, hasGreedy ? 'one-call' : 'step-loop');
        const loop = await loadBundleFromDir(bundleDir(name), { variant, oneCall: false });
        assert.equal(loop.decodePath, 'step-loop');
        for (const batchSize of [1, 32]) {
          const a = await decoder.decodeBatchResults(inputs, { batchSize });
          const b = await loop.decodeBatchResults(inputs, { batchSize });
          assert.deepEqual(a.map((r) => [r.text, r.finished, r.tokenProbs.length]), b.map((r) => [r.text, r.finished, r.tokenProbs.length]));
          a.forEach((r, i) => r.tokenProbs.forEach((p, k) => assert.ok(Math.abs(p - b[i].tokenProbs[k]) < 1e-4)));
        }
        const cut = 2;
        assert.deepEqual((await decoder.decodeBatch(inputs, { maxOutputLen: cut })), await loop.decodeBatch(inputs, { maxOutputLen: cut }));
        await loop.release();
        if (!hasGreedy) await assert.rejects(loadBundleFromDir(bundleDir(name), { variant, oneCall: true }), BundleError);
      });

      test('results carry token probabilities and the score; stream pieces join to the text', async () => {
        const r = await decoder.decodeResult(inputs[0]);
        assert.equal(r.tokenProbs.length, r.tokens.length + (r.finished ? 1 : 0));
        assert.ok(r.tokenProbs.every((p) => p > 0 && p <= 1));
        assert.ok(Math.abs(r.score - r.tokenProbs.reduce((s, p) => s + Math.log(p), 0)) < 1e-9);
        const pieces = [];
        for await (const piece of decoder.stream(inputs[0])) pieces.push(piece);
        assert.equal(pieces.join(''), r.text);
        assert.equal(pieces.length, r.tokens.length);
      });
    });
  }
}

describe('options and inputs', () => {
  let digits;
  let numbers;
  before(async () => {
    digits = await loadBundleFromDir(bundleDir('digits'));
    numbers = await loadBundleFromDir(bundleDir('numbers'));
  });
  after(async () => { await digits.release(); await numbers.release(); });

  test('maxOutputLen cuts the output and leaves it unfinished', async () => {
    const r = await digits.decodeResult('7', { maxOutputLen: 3 });
    assert.equal(r.text, 'sev');
    assert.equal(r.finished, false);
    assert.equal(r.tokenProbs.length, 3);
    await assert.rejects(digits.decode('7', { maxOutputLen: 0 }), { name: 'OptionError', message: 'maxOutputLen must be an integer of at least 1, got 0' });
    await assert.rejects(digits.decode('7', { maxOutputLen: 6 }), { name: 'OptionError', message: 'maxOutputLen must be between 1 and the trained maximum 5, got 6' });
    await assert.rejects(digits.decodeBatch(['7'], { batchSize: 0 }), { message: 'batchSize must be between 1 and 4096, got 0' });
    await assert.rejects(digits.decodeIds([[4]], { batchSize: 4097 }), { message: 'batchSize must be between 1 and 4096, got 4097' });
    // an option this runtime does not have is an error, never silently ignored
    await assert.rejects(digits.decode('7', { beamSize: 4 }), { name: 'OptionError', message: 'beamSize: beam search is in the Python runtime only; this runtime decodes greedily' });
    await assert.rejects(digits.decodeBatchResults(['7'], { batch_size: 2 }), { name: 'OptionError', message: "unknown decode option 'batch_size' (the options: batchSize, maxOutputLen, skipUnknown)" });
    await assert.rejects(async () => { for await (const p of digits.stream('7', { skipUnknown: 'yes' })) void p; }, { message: 'skipUnknown must be true or false, got yes' });
  });

  test('space targets stream words with one space before each but the first', async () => {
    const pieces = [];
    for await (const p of numbers.stream('472')) pieces.push(p);
    assert.deepEqual(pieces, ['four', ' hundred', ' and']);
  });

  test('an empty input decodes to an empty, finished result without the models', async () => {
    const r = await digits.decodeResult('');
    assert.deepEqual([r.text, r.finished, r.tokens.length, r.tokenProbs.length], ['', true, 0, 0]);
  });

  test('unknown symbols are an error naming them; batches name the item', async () => {
    await assert.rejects(digits.decode('z'), { name: 'InputTextError', message: "input has 1 symbol(s) the model never saw: 'z'" });
    await assert.rejects(digits.decode('1\u0000é'), { message: "input has 2 symbol(s) the model never saw: U+0000, 'é'" });
    await assert.rejects(digits.decodeBatch(['1', '2', 'z']), { name: 'InputTextError', message: "item 3 of 3 ('z'): input has 1 symbol(s) the model never saw: 'z'" });
    assert.equal(await digits.decode('z7', { skipUnknown: true }), 'seven');
  });

  test('too long, not Unicode, not a string', async () => {
    await assert.rejects(digits.decode('12'), { name: 'InputTextError', message: 'input is 2 tokens long; the model takes at most 1' });
    await assert.rejects(digits.decode('1'.repeat(1_000_000)), { message: 'input is 1000000 characters long; the model takes at most 1 tokens' });
    await assert.rejects(digits.decode('\udcff'), { name: 'InputTextError', message: 'not valid Unicode: lone surrogate U+DCFF at column 1' });
    await assert.rejects(digits.decode(7), { name: 'TypeError', message: 'input must be a string, not number' });
    await assert.rejects(digits.decodeBatch('17'), TypeError);
  });

  test('NFC: a decomposed input is composed before lookup', () => {
    const d = JSON.parse(readFileSync(path.join(bundleDir('digits'), 'manifest.json'), 'utf8'));
    d.preprocessing.input.vocabulary.push('é');
    const m = BundleManifest.fromObject(d);
    assert.deepEqual(m.encodeInput('e\u0301'), [d.preprocessing.input.vocabulary.length - 1]);
  });
});

describe('tampered and bad bundles', () => {
  const manifestOf = (dir) => JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const rewrite = (dir, change) => {
    const d = manifestOf(dir);
    change(d);
    writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(d));
    return dir;
  };

  test('a model whose weights are external data is refused, not read from the working directory', async () => {
    // the decoder step's largest initializer moved to "secret.bin", which is in the working directory with the
    // right bytes: onnxruntime-node must not read it (it would decode as before)
    const dir = copyBundle('digits');
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      execFileSync(PYTHON, ['-c', `
import hashlib, json, onnx
m = onnx.load("decoder_step.fp32.onnx")
t = max(m.graph.initializer, key=lambda t: len(t.raw_data))
open("secret.bin", "wb").write(t.raw_data)
t.data_location = onnx.TensorProto.EXTERNAL
for k, v in (("location", "secret.bin"), ("offset", "0"), ("length", str(len(t.raw_data)))):
    e = t.external_data.add(); e.key, e.value = k, v
t.ClearField("raw_data")
data = m.SerializeToString()
open("decoder_step.fp32.onnx", "wb").write(data)
man = json.load(open("manifest.json"))
for e in man["models"]:
    if e["path"] == "decoder_step.fp32.onnx":
        e["size_bytes"], e["sha256"] = len(data), hashlib.sha256(data).hexdigest()
json.dump(man, open("manifest.json", "w"))
`]);
      // refused from the bytes, as the Python runtime refuses it, before onnxruntime-node sees the file
      await assert.rejects(loadBundleFromDir(dir, { oneCall: false }), (e) => e instanceof BundleError
        && /^[^:]+decoder_step\.fp32\.onnx: refers to external data for \['[^']+'\]; bundle models must embed their weights \(external data is refused\)$/.test(e.message));
      // and the second line: the engine itself is told external data lives in a folder that cannot exist
      const entry = JSON.parse(readFileSync('manifest.json', 'utf8')).models.find((m) => m.path === 'decoder_step.fp32.onnx');
      await assert.rejects(onnxRuntimeEngine(ort).createSession(readFileSync('decoder_step.fp32.onnx'), entry),
        /External data path validation failed/);
    } finally {
      process.chdir(cwd);
    }
  });

  test('a flipped byte fails the sha256 check before any engine sees the file', async () => {
    const dir = copyBundle('digits');
    const file = path.join(dir, 'decoder_step.fp32.onnx');
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(file, bytes);
    await assert.rejects(loadBundleFromDir(dir), { name: 'BundleError', message: `${file}: model file's sha256 does not match the manifest (modified or corrupted: copy the bundle again)` });
  });

  test('a link out of the bundle, a FIFO and a folder are refused before a byte is read', async () => {
    for (const [make, message] of [
      [(f) => symlinkSync('/etc/passwd', f), 'is a symbolic link; bundle files must be regular files inside the bundle folder'],
      [(f) => execFileSync('mkfifo', [f]), 'is a FIFO, not a regular file'],
      [(f) => mkdirSync(f), 'is a folder, not a regular file'],
    ]) {
      const dir = copyBundle('digits');
      const file = path.join(dir, 'encoder.fp32.onnx');
      unlinkSync(file);
      make(file);
      await assert.rejects(loadBundleFromDir(dir), { name: 'BundleError', message: `${file}: ${message}` });
    }
    const dir = copyBundle('digits');
    unlinkSync(path.join(dir, 'manifest.json'));
    symlinkSync('/etc/passwd', path.join(dir, 'manifest.json'));
    await assert.rejects(loadBundleFromDir(dir), { message: `${path.join(dir, 'manifest.json')}: is a symbolic link; bundle files must be regular files inside the bundle folder` });
  });

  test('a truncated or missing file is refused by its size', async () => {
    const dir = copyBundle('digits');
    const file = path.join(dir, 'encoder.fp32.onnx');
    const size = manifestOf(dir).models.find((m) => m.path === 'encoder.fp32.onnx').size_bytes;
    truncateSync(file, 100);
    await assert.rejects(loadBundleFromDir(dir), { message: `${file}: model file is 100 bytes, the manifest says ${size} (truncated, replaced or corrupted: copy the bundle again)` });
    await assert.rejects(loadBundleFromDir(path.join(dir, 'nope')), { message: `${path.join(dir, 'nope', 'manifest.json')}: no manifest.json here: is this a bundle written by \`s2s export\`?` });
  });

  test('a manifest of another format version is refused with what to do', async () => {
    const dir = rewrite(copyBundle('digits'), (d) => { d.version = 2; });
    await assert.rejects(loadBundleFromDir(dir), { message: `${path.join(dir, 'manifest.json')}: manifest format version 2 is not supported by this runtime (it reads version 1); upgrade @seq2seq-edge/runtime or re-export the bundle` });
  });

  test('missing keys and out-of-range values are listed together', () => {
    const d = manifestOf(bundleDir('digits'));
    delete d.models;
    d.preprocessing.target.max_tokens = 0;
    assert.deepEqual(manifestProblems(d), ["/: missing key 'models'", '/preprocessing/target/max_tokens: must be at least 1, got 0']);
  });

  test('I/O that contradicts the model contract is refused', () => {
    const d = manifestOf(bundleDir('digits'));
    d.model.latent_dim = 16;
    const problems = manifestProblems(d);
    // every encoder's outputs, every step's inputs and outputs (other roles are not this runtime's to check)
    const count = (role) => d.models.filter((m) => m.role === role).length;
    assert.equal(problems.length, count('encoder') + 2 * count('decoder_step'));
    assert.equal(problems[0], "models[0] ('encoder.fp32.tflite'): outputs [state_c:float32[-1, 32], state_h:float32[-1, 32]] contradict the contract [state_c:float32[-1, 16], state_h:float32[-1, 16]]");
  });

  test('a model whose real I/O contradicts its (re-signed) manifest entry is refused', async () => {
    const dir = copyBundle('digits');
    const other = readFileSync(path.join(bundleDir('numbers'), 'encoder.fp32.onnx'));
    writeFileSync(path.join(dir, 'encoder.fp32.onnx'), other);
    rewrite(dir, (d) => {
      const entry = d.models.find((m) => m.path === 'encoder.fp32.onnx');
      entry.size_bytes = other.length;
      entry.sha256 = createHash('sha256').update(other).digest('hex');
    });
    // the numbers encoder loops over 3 positions: its bytes are refused before its I/O is looked at
    await assert.rejects(loadBundleFromDir(dir), { name: 'BundleError', message: `${path.join(dir, 'encoder.fp32.onnx')}: has a loop of up to 3 steps; a encoder of this bundle may loop at most 1 times` });
    // the numbers decoder step has no loop and the same operators: what differs is its real I/O
    const step = readFileSync(path.join(bundleDir('numbers'), 'decoder_step.fp32.onnx'));
    writeFileSync(path.join(dir, 'encoder.fp32.onnx'), readFileSync(path.join(bundleDir('digits'), 'encoder.fp32.onnx')));
    writeFileSync(path.join(dir, 'decoder_step.fp32.onnx'), step);
    rewrite(dir, (d) => {
      Object.assign(d.models.find((m) => m.path === 'encoder.fp32.onnx'), JSON.parse(readFileSync(path.join(bundleDir('digits'), 'manifest.json'), 'utf8')).models.find((m) => m.path === 'encoder.fp32.onnx'));
      const entry = d.models.find((m) => m.path === 'decoder_step.fp32.onnx');
      entry.size_bytes = step.length;
      entry.sha256 = createHash('sha256').update(step).digest('hex');
    });
    await assert.rejects(loadBundleFromDir(dir, { oneCall: false }), { name: 'BundleError', message: `${path.join(dir, 'decoder_step.fp32.onnx')}: 5 problems: input 'state_h' has shape [-1, 24] in the model, [-1, 32] in the manifest; input 'state_c' has shape [-1, 24] in the model, [-1, 32] in the manifest; output 'probs' has shape [-1, 105] in the model, [-1, 17] in the manifest; output 'next_state_h' has shape [-1, 24] in the model, [-1, 32] in the manifest; output 'next_state_c' has shape [-1, 24] in the model, [-1, 32] in the manifest` });
  });

  test('model entries of roles it does not use are ignored, not refused', async () => {
    const dir = rewrite(copyBundle('digits'), (d) => {
      d.models.push({ ...d.models.find((m) => m.path === 'encoder.fp32.onnx'), role: 'a_future_role', path: 'future.fp32.onnx', inputs: [], outputs: [] });
    });
    const decoder = await loadBundleFromDir(dir);
    assert.equal(await decoder.decode('3'), 'three');
    await decoder.release();
  });

  for (const oneCall of [true, false]) {
    test(`reserved ids and impossible probabilities are errors naming the model (${oneCall ? 'one-call' : 'step loop'})`, async () => {
      const cases = [
        [[5, 0, 6, 2], 0.9, null, 'the model chose the reserved id 0 at step 2 of item 1 (only the end id 2 may end an output)'],
        [[1, 2], 0.9, null, 'the model chose the reserved id 1 at step 1 of item 1 (only the end id 2 may end an output)'],
        [[5, 2], NaN, null, 'the model gave a probability of nan (not a probability in [0, 1])'],
        [[5, 2], -0.5, null, 'the model gave a probability of -0.5 (not a probability in [0, 1])'],
      ];
      for (const [ids, prob, , message] of cases) {
        const d = await loadBundleFromDir(bundleDir('numbers'), { oneCall: oneCall ? true : false });
        const model = oneCall ? d.greedy : d.step;
        const real = model.run;
        if (oneCall) {
          const width = d.maxOutputLen + 1;
          const row = [...ids, ...new Array(width - ids.length).fill(0)];
          model.run = async () => ({ output_ids: { data: Int32Array.from(row), dims: [1, width] },
            output_probs: { data: Float32Array.from(row.map((i) => (i > 0 ? prob : 0))), dims: [1, width] } });
        } else {
          let k = 0;
          model.run = async (feeds) => {
            const out = await real(feeds);
            const probs = new Float32Array(out.probs.data.length).fill(prob < 0 ? -1 : 0);
            probs[ids[k++]] = prob;
            return { ...out, probs: { data: probs, dims: out.probs.dims } };
          };
        }
        await assert.rejects(d.decode('12'), (e) => e instanceof BundleError && e.message.endsWith(message)
          && e.message.includes(oneCall ? 'greedy.fp32.onnx' : 'decoder_step.fp32.onnx'));
        await d.release();
      }
    });
  }

  test('a variant the bundle lacks names the ones it has', async () => {
    await assert.rejects(loadBundleFromDir(bundleDir('digits'), { variant: 'fp16' }), { message: `${bundleDir('digits')}: the bundle has no onnx fp16 models (it holds onnx variants ["fp32","int8"])` });
  });

  test('unknown_token: symbols outside the vocabulary map to its id', async () => {
    const dir = rewrite(copyBundle('digits'), (d) => { d.preprocessing.input.unknown_token = '7'; });
    const decoder = await loadBundleFromDir(dir);
    assert.deepEqual(await decoder.decodeBatch(['z', '%', '1']), ['seven', 'seven', 'one']);
    await decoder.release();
    const bad = manifestOf(dir);
    bad.preprocessing.input.unknown_token = 'x';
    assert.deepEqual(manifestProblems(bad), ["input.unknown_token 'x' is not an entry of input.vocabulary"]);
    bad.preprocessing.input.unknown_token = '<s2s pad>';
    assert.deepEqual(manifestProblems(bad), ['/preprocessing/input/unknown_token: must not be one of ["<s2s pad>","<s2s start>","<s2s end>"], got "<s2s pad>"']);
    delete bad.preprocessing.input.unknown_token;
    bad.preprocessing.target.unknown_token = 'one';
    assert.deepEqual(manifestProblems(bad), ["/preprocessing/target: must not have 'unknown_token'"]);
  });

  test('every fixture manifest is valid under the shared schema', () => {
    for (const name of BUNDLES) assert.deepEqual(manifestProblems(manifestOf(bundleDir(name))), []);
  });
});

describe('manifests the Python validator refuses are refused here too', () => {
  // The cases of tests/test_schema.py, through this package's schema checker.
  const set = (keys, value) => (d) => { const last = keys.pop(); keys.reduce((n, k) => n[k], d)[last] = value; };
  const CASES = {
    'version 2': [set(['version'], 2), 'manifest format version 2 is not supported by this runtime (it reads version 1); upgrade @seq2seq-edge/runtime or re-export the bundle'],
    'no models': [(d) => { delete d.models; }, "/: missing key 'models'"],
    'no preprocessing': [(d) => { delete d.preprocessing; }, "/: missing key 'preprocessing'"],
    'wrong format': [set(['format'], 'something-else'), '/format: must be "seq2seq-edge-bundle", got "something-else"'],
    'normalization NFD': [set(['preprocessing', 'normalization'], 'NFD'), '/preprocessing/normalization: must be "NFC", got "NFD"'],
    'tokenization word': [set(['preprocessing', 'input', 'tokenization'], 'word'), '/preprocessing/input/tokenization: must be one of ["char","space"], got "word"'],
    'max_tokens too big': [set(['preprocessing', 'input', 'max_tokens'], 4097), '/preprocessing/input/max_tokens: must be at most 4096, got 4097'],
    'vocabulary without specials': [(d) => d.preprocessing.input.vocabulary.shift(), '/preprocessing/input/vocabulary/0: must be "<s2s pad>", got "<s2s start>"'],
    'duplicate vocabulary entries': [(d) => d.preprocessing.input.vocabulary.push('1', '2', '1'), "input.vocabulary has duplicate entries: '1', '2'"],
    'latent_dim string': [set(['model', 'latent_dim'], '32'), '/model/latent_dim: must be an integer, got "32"'],
    'unknown architecture': [set(['model', 'architecture'], 'transformer'), '/model/architecture: must be one of ["lstm-encoder-decoder","lstm-attention"], got "transformer"'],
    'attention dim on a seed model': [set(['model', 'encoder_output_dim'], 32), "/model: must not have 'encoder_output_dim'"],
    'path outside the bundle': [set(['models', 0, 'path'], '../encoder.onnx'), '/models/0/path: "../encoder.onnx" does not match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'],
    'sha256 uppercase': [(d) => { d.models[0].sha256 = 'A'.repeat(64); }, `/models/0/sha256: "${'A'.repeat(56)}... does not match ^[0-9a-f]{64}$`],
    'size 0': [set(['models', 0, 'size_bytes'], 0), '/models/0/size_bytes: must be at least 1, got 0'],
    'fp16 onnx': [(d) => { d.models.find((m) => m.format === 'onnx').variant = 'fp16'; }, null],
    'shape with 0': [set(['models', 0, 'inputs', 0, 'shape'], [0, 1]), '/models/0/inputs/0/shape/0: must not be 0, got 0'],
    'time steps below max_tokens': [set(['model', 'encoder_time_steps'], 0), '/model/encoder_time_steps: must be at least 1, got 0'],
  };
  for (const [name, [mutate, first]] of Object.entries(CASES)) {
    test(name, () => {
      const d = JSON.parse(readFileSync(path.join(bundleDir('digits'), 'manifest.json'), 'utf8'));
      mutate(d);
      const problems = manifestProblems(d);
      assert.ok(problems.length > 0);
      if (first) assert.equal(problems[0], first);
    });
  }

  test('errors are typed and list every problem', () => {
    assert.equal(new BundleError(['a', 'b'], 'x').message, 'x: 2 problems: a; b');
    assert.ok(new InputTextError('m') instanceof Error);
  });
});

describe('the text policy is the Python runtime\'s', () => {
  // Awkward inputs through both runtimes' preprocessing: the same ids, or the same error message.
  const TRICKY = ['1', 'e\u0301', '\u00e9', '1\u00a02', '1\u20002', '1\u200b2', '1\ufeff2', '1\x1c2', '1\x852', ' 12 ',
    '\t1\n', '', 'z', "'", '"\'', '\\', '\udcff', 'a\ud800b', '😀', '\u0000', '\u007f', '\u2028', 'é1z😀\u0000',
    'abcdefghijklmnop', '1'.repeat(300), '٣', 'Ⅻ', '1 2 3 4', 'one two', 'one  two\u3000three'];
  const run = (preprocessing, skipUnknown) => {
    const ref = JSON.parse(execFileSync(PYTHON, [path.join(JS_DIR, 'test', 'python_text.py')],
      { input: JSON.stringify({ preprocessing, inputs: TRICKY, skip_unknown: skipUnknown }), encoding: 'utf8' }));
    const m = BundleManifest.fromObject({ ...JSON.parse(readFileSync(path.join(bundleDir('numbers'), 'manifest.json'), 'utf8')), preprocessing });
    TRICKY.forEach((text, i) => {
      let got;
      try { got = { ids: m.encodeInput(text, { skipUnknown }) }; } catch (e) { got = { error: e.message }; }
      assert.deepEqual(got, ref[i], `input ${JSON.stringify(text)}`);
    });
  };
  const base = () => JSON.parse(readFileSync(path.join(bundleDir('numbers'), 'manifest.json'), 'utf8')).preprocessing;

  test('the shared text vectors (tests/make_vectors.py, also read by the C and Kotlin tests)', () => {
    const numbers = JSON.parse(readFileSync(path.join(bundleDir('numbers'), 'manifest.json'), 'utf8'));
    let n = 0;
    for (const policy of vectors().text) {
      const m = BundleManifest.fromObject({ ...numbers, preprocessing: policy.preprocessing });
      for (const c of policy.cases) {
        let got;
        try { got = { ids: m.encodeInput(c.input, { skipUnknown: policy.skip_unknown }) }; } catch (e) { got = { error: e.message }; }
        assert.deepEqual(got, 'error' in c ? { error: c.error } : { ids: c.ids }, `${policy.name}: ${JSON.stringify(c.input)}`);
        n++;
      }
    }
    assert.ok(n >= 100, `only ${n} text vectors`);
  });

  test('char inputs (the numbers bundle, with é and an emoji added)', () => {
    const p = base();
    p.input.vocabulary.push('é', '😀', ' ');
    run(p, false);
    run(p, true);
  });

  test('space inputs and an unknown token', () => {
    const p = base();
    p.input.tokenization = 'space';
    p.input.vocabulary = [...p.input.vocabulary.slice(0, 3), '<s2s unk>', '1', '2', 'one', 'two', 'three', 'é'];
    p.input.max_tokens = 3;
    run(p, false);
    p.input.unknown_token = '<s2s unk>';
    run(p, false);
  });
});

describe('the TFLite batch-pinning pass is bounded by the file\'s size', () => {
  /** A flatbuffer whose model lists one subgraph n times, which lists one tensor n times, whose shape has n
   * dims: about 12·n bytes asking for n³ visits without a budget. */
  function sharedTables(n) {
    const bytes = new Uint8Array(128 + 12 * n);
    const v = new DataView(bytes.buffer);
    const u16 = (p, x) => v.setUint16(p, x, true);
    const u32 = (p, x) => v.setUint32(p, x, true);
    u32(0, 16);
    [10, 8, 0, 0, 4].forEach((x, i) => u16(4 + 2 * i, x)); // the model's vtable: field 2 (subgraphs) at +4
    v.setInt32(16, 12, true); u32(20, 24 - 20); // model table -> subgraphs vector at 24
    const s0 = 28 + 4 * n;
    u32(24, n); for (let i = 0; i < n; i++) u32(28 + 4 * i, s0 + 8 - (28 + 4 * i));
    [6, 8, 4].forEach((x, i) => u16(s0 + 2 * i, x));
    const s = s0 + 8; v.setInt32(s, 8, true); u32(s + 4, s + 8 - (s + 4)); // subgraph -> tensors vector
    const t0 = s + 12 + 4 * n;
    u32(s + 8, n); for (let i = 0; i < n; i++) u32(s + 12 + 4 * i, t0 + 8 - (s + 12 + 4 * i));
    [6, 8, 4].forEach((x, i) => u16(t0 + 2 * i, x));
    const t = t0 + 8; v.setInt32(t, 8, true); u32(t + 4, t + 8 - (t + 4)); // tensor -> shape vector
    u32(t + 8, n); for (let i = 0; i < n; i++) v.setInt32(t + 12 + 4 * i, -1, true);
    return bytes.subarray(0, t + 12 + 4 * n);
  }

  test('a small file of shared tables is refused at once, not worked on for hours', { timeout: 60_000 }, async () => {
    const { pinBatchToOne } = await import('../src/engines/tflite-batch.js');
    const single = sharedTables(1); // nothing shared: pinned
    assert.equal(new DataView(pinBatchToOne(single, 'x').buffer).getInt32(single.byteLength - 4, true), 1);
    assert.throws(() => pinBatchToOne(sharedTables(20_000), 'crafted.tflite'),
      { name: 'BundleError', message: "crafted.tflite: not a well-formed TFLite file (tables are shared or nested beyond what the file's size allows)" });
  });
});

describe('crafted model files are judged from their bytes as the Python runtime judges them', () => {
  const { dir, cases, mutants } = crafted();
  test('seeded mutants of the fixture models (tests/mutants.py): the Python reader\'s verdicts, word for word', () => {
    assert.ok(mutants.length >= 200);
    for (const m of mutants) {
      let got = null;
      try { checkModelOps(new Uint8Array(readFileSync(path.join(dir, m.file))), m, m.file, m.loop_limit, m.row_limit); } catch (e) {
        assert.ok(e instanceof BundleError, `${m.name}: ${e?.name}: ${e?.message}`);
        got = e.message;
      }
      assert.equal(got, m.error, m.name);
    }
  });
  test('the shared cases: attacks and the exporter\'s own models', () => {
    assert.ok(cases.filter((c) => c.error === null).length >= 30 && cases.filter((c) => c.error !== null).length >= 20);
  });
  for (const c of cases) {
    test(c.name, () => {
      const bytes = new Uint8Array(readFileSync(path.join(dir, c.file)));
      let got = null;
      try { checkModelOps(bytes, c, c.file, c.loop_limit, c.row_limit); } catch (e) {
        assert.ok(e instanceof BundleError, `${e?.name}: ${e?.message}`);
        got = e.message;
      }
      assert.equal(got, c.error);
      assert.equal(got === null, c.expect === 'accepted'); // the verdict tests/make_crafted.py states by hand
    });
  }
});
