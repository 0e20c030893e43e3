// Cold start in node, measured in a fresh process: from process start to the first decoded word (importing the
// package and onnxruntime-node, reading and checking the bundle, creating both sessions, one decode).
// node bench/cold.js BUNDLE_DIR VARIANT INPUT [auto|false]  ->  {"cold_start_ms": ..., "output": ...}
const [dir, variant, input, oneCall = 'auto'] = process.argv.slice(2);
const { loadBundleFromDir } = await import('../src/node.js');
const decoder = await loadBundleFromDir(dir, { variant, oneCall: oneCall === 'false' ? false : 'auto' });
const output = await decoder.decode(input);
const ms = performance.now(); // since the process started (performance.timeOrigin)
process.stdout.write(JSON.stringify({ cold_start_ms: Math.round(ms * 10) / 10, output }) + '\n');
