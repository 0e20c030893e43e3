// One timing protocol for every engine (node, the browser page, Python): each golden input decoded alone
// (batch 1), one warm-up round, then ROUNDS timed rounds; per-word latency = one decode() call.
export const ROUNDS = 5;

export function summarize(times) {
  const s = [...times].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { per_word_ms_p50: round(q(0.5)), per_word_ms_p90: round(q(0.9)), per_word_ms_mean: round(s.reduce((a, b) => a + b, 0) / s.length), calls: s.length };
}

export function round(x) { return Math.round(x * 1000) / 1000; }

/** Time `decode(input)` over the inputs: a warm-up round, then ROUNDS rounds. */
export async function timeDecodes(decode, inputs, now, rounds = ROUNDS) {
  for (const x of inputs) await decode(x);
  const times = [];
  for (let r = 0; r < rounds; r++) {
    for (const x of inputs) {
      const t0 = now();
      await decode(x);
      times.push(now() - t0);
    }
  }
  return summarize(times);
}
