"""Beam search: greedy at beam 1, the search rules on hand-built models, batching, the reference, and s2s run.

The hand-built models are tables: each input has its own distributions, prefix -> {token: probability}, so the
right answer of every case can be worked out by hand. They need only numpy (the runtime-only venvs run them).
"""

import dataclasses
import json
import math
import zlib

import numpy as np
import pytest

import seq2seq_edge
from seq2seq_edge import backends, beam, options, text
from seq2seq_edge import manifest as mf
from seq2seq_edge.decoder import Seq2SeqDecoder, padded_batches

from conftest import requires_train
from support import one_error_line, s2s

INSTALLED = [b for b in backends.AUTO_ORDER if backends.is_installed(b)]
FP32 = [(b, "fp32") for b in INSTALLED]
ALL_VARIANTS = [(b, v) for b in INSTALLED for v in mf.VARIANTS[backends.BACKENDS[b].format]]
END = "$"  # the end marker in the tables below
#: An attention decoder's extra step input: constant per input text, carried along with its beams.
CONSTANT_INPUT = getattr(mf, "ENCODER_OUTPUTS", "encoder_outputs")


def golden_inputs(bundle):
    return [i["input"] for i in json.loads((bundle / "golden.json").read_text(encoding="utf-8"))["items"]]


def texts(result):
    return [r.text for r in (result, *result.alternatives)]


def n_best(result):
    return [(r.text, r.finished) for r in (result, *result.alternatives)]


# ---- hand-built models ---------------------------------------------------------------------------------------
class TableModel:
    """Encoder and decoder step of a "model" whose next-token distribution is a table lookup.

    ``tables[k]`` is the table of the digit input k + 1 ("1" -> tables[0]): prefix (the output so far, a string
    of the digits bundle's one-letter tokens) -> {token: probability}, END for the end marker; a prefix missing
    from the table ends (END: 1), unless ``fallback`` gives its distribution (prefix -> probabilities [V]).
    state_h[:, 0] holds the prefix's number, state_c[:, 0] the table's; with ``constant=True`` the step takes the
    table's number from an extra input that stays constant through the decode (as an attention decoder's
    encoder outputs do), and checks that it still agrees with the state of its row.
    """

    def __init__(self, vocab, tables, *, constant=False, fallback=None):
        self.vocab, self.tables, self.constant, self.fallback = vocab, tables, constant, fallback
        self.ids = {t: i for i, t in enumerate(vocab)}
        self.prefixes = [""]
        self.rows_seen = []
        self.encoder, self.step = _Runner(self.encode), _Runner(self.run_step)

    def encode(self, feeds):
        ids = feeds[mf.INPUT_IDS]
        table = (ids[:, 0] - 3).astype(np.float32)  # input vocabulary: pad, start, end, "1", ..., "9"
        h = np.zeros((len(ids), 32), np.float32)
        c = np.zeros((len(ids), 32), np.float32)
        h[:, 0], c[:, 0] = -1, table
        out = {mf.STATE_H: h, mf.STATE_C: c}
        if self.constant:
            out[CONSTANT_INPUT] = np.repeat(table[:, None, None], 4, axis=2)
        return out

    def distribution(self, table: int, prefix: str) -> np.ndarray:
        entry = self.tables[table].get(prefix)
        if entry is None and self.fallback is not None:
            return self.fallback(table, prefix)
        p = np.zeros(len(self.vocab), np.float32)
        for token, prob in (entry or {END: 1.0}).items():
            p[text.END_ID if token == END else self.ids[token]] = prob
        return p

    def run_step(self, feeds):
        prev, h, c = feeds[mf.PREV_TOKEN], feeds[mf.STATE_H], feeds[mf.STATE_C]
        self.rows_seen.append(len(prev))
        probs = np.zeros((len(prev), len(self.vocab)), np.float32)
        next_h = h.copy()
        for row, token in enumerate(prev.tolist()):
            table = int(c[row, 0])
            if self.constant:
                assert int(feeds[CONSTANT_INPUT][row, 0, 0]) == table, "a constant input left its beam"
            at = int(h[row, 0])  # -1 before the first step (its token is the start id)
            prefix = "" if at < 0 else self.prefixes[at] + self.vocab[token]
            if prefix not in self.prefixes:
                self.prefixes.append(prefix)
            next_h[row, 0] = self.prefixes.index(prefix)
            probs[row] = self.distribution(table, prefix)
        return {mf.PROBS: probs, mf.NEXT_STATE_H: next_h, mf.NEXT_STATE_C: c.copy()}


class _Runner:
    def __init__(self, fn):
        self.run = fn


def table_decoder(manifest, tables, **kwargs) -> tuple[Seq2SeqDecoder, TableModel]:
    """A decoder around a TableModel, with the digits bundle's manifest (one-letter output tokens, at most 5)."""
    model = TableModel(manifest.preprocessing.target_vocabulary, tables, **kwargs)
    if model.constant:  # the step takes one more input, as an attention bundle's does
        extra = mf.TensorSpec(CONSTANT_INPUT, "float32", (-1, manifest.encoder_time_steps, 4))
        manifest = dataclasses.replace(manifest, models=tuple(
            dataclasses.replace(m, inputs=m.inputs + (extra,)) if m.role == mf.DECODER_STEP else m
            for m in manifest.models))
    return Seq2SeqDecoder(manifest, model.encoder, model.step, backend="table", variant="fp32"), model


@pytest.fixture(scope="module")
def manifest(fixture_dir):
    return mf.BundleManifest.load(fixture_dir / "bundles" / "digits")


#: Greedy takes "o" (0.6), then can only reach 0.6 x 0.4 = 0.24 ("on"); "t" (0.4) leads to "tw" at 0.36.
GARDEN_PATH = {"": {"o": 0.6, "t": 0.4}, "o": {"n": 0.4, "w": 0.3, "e": 0.3}, "t": {"w": 0.9, "e": 0.1},
               "on": {END: 1.0}, "ow": {END: 1.0}, "oe": {END: 1.0}, "tw": {END: 1.0}, "te": {END: 1.0}}


def test_beam_finds_what_greedy_misses_on_a_garden_path(manifest):
    decoder, _ = table_decoder(manifest, [GARDEN_PATH])
    assert decoder.decode("1") == "on"
    assert decoder.decode("1", beam_size=2) == "tw"
    best = decoder.decode_result("1", beam_size=2, n_best=2)
    assert texts(best) == ["tw", "on"]
    assert [r.token_probs for r in (best, *best.alternatives)] == [
        (np.float32(0.4), np.float32(0.9), 1.0), (np.float32(0.6), np.float32(0.4), 1.0)]
    assert best.score == math.log(np.float32(0.4)) + math.log(np.float32(0.9)) + 0.0
    assert [best.finished, best.alternatives[0].finished] == [True, True]
    assert best.alternatives[0].alternatives == ()
    # n_best alone sets the beam; beam 3 and 4 find the same best and the next ones in order
    assert texts(decoder.decode_result("1", n_best=3)) == ["tw", "on", "oe"]
    assert texts(decoder.decode_result("1", beam_size=4, n_best=4)) == ["tw", "on", "oe", "ow"]


#: "o" ends at 0.95 x 0.5 = 0.475 (2 with the end marker); "one" at 0.95 x 0.5 x 0.95 = 0.451 (length 4).
LENGTHS = {"": {"o": 0.95, "t": 0.05}, "o": {END: 0.5, "n": 0.5}, "on": {"e": 0.95, "w": 0.05},
           "one": {END: 1.0}, "onw": {END: 1.0}, "t": {END: 1.0}}


def test_length_penalty_changes_the_ranking(manifest):
    decoder, _ = table_decoder(manifest, [LENGTHS])
    plain = decoder.decode_result("1", beam_size=2, n_best=2)
    assert texts(plain) == ["o", "one"]
    # alpha 1: log(0.475) / (7/6) = -0.638 against log(0.451) / (9/6) = -0.531
    penalized = decoder.decode_result("1", beam_size=2, n_best=2, length_penalty=1.0)
    assert texts(penalized) == ["one", "o"]
    assert penalized.score == plain.alternatives[0].score  # scores stay log-probabilities
    assert decoder.decode("1", beam_size=2, length_penalty=0.1) == "o"


#: At the limit (2 tokens here) "on" would go on with "e": unfinished; "tw" would end: finished.
AT_THE_LIMIT = {"": {"o": 0.6, "t": 0.4}, "o": {"n": 1.0}, "t": {"w": 1.0}, "on": {"e": 0.7, END: 0.3},
                "tw": {END: 0.9, "o": 0.1}}


def test_hypotheses_at_the_length_limit(manifest):
    decoder, _ = table_decoder(manifest, [AT_THE_LIMIT])
    greedy = decoder.decode_result("1", max_output_len=2)
    assert (greedy.text, greedy.finished, greedy.token_probs) == ("on", False, (np.float32(0.6), 1.0))
    best = decoder.decode_result("1", beam_size=2, n_best=2, max_output_len=2)
    assert [(r.text, r.finished, len(r.token_probs)) for r in (best, *best.alternatives)] == [
        ("on", False, 2), ("tw", True, 3)]
    assert best == dataclasses.replace(greedy, alternatives=best.alternatives)
    # without the limit "one" (0.6 x 0.7, then the end) and "tw" (0.4 x 0.9) are both finished
    assert texts(decoder.decode_result("1", beam_size=2, n_best=2)) == ["one", "tw"]


def test_exact_ties_are_broken_by_token_ids(manifest):
    # Every two-letter output has probability 1/4: the lists are in token-id order (e < n < o < t < w).
    ties = {"": {"o": 0.5, "t": 0.5}, "o": {"n": 0.5, "e": 0.5}, "t": {"w": 0.5, "e": 0.5}}
    decoder, _ = table_decoder(manifest, [ties])
    assert texts(decoder.decode_result("1", beam_size=2, n_best=2)) == ["oe", "on"]
    assert texts(decoder.decode_result("1", beam_size=4, n_best=4)) == ["oe", "on", "te", "tw"]
    assert decoder.decode("1") == "oe"  # greedy: argmax takes the first of equal probabilities (o, then e)
    # A difference of one float32 step decides, whatever the ids say.
    near = {"": {"o": 0.5, "t": np.nextafter(np.float32(0.5), np.float32(1))}, "o": {"e": 1.0}, "t": {"e": 1.0}}
    decoder, _ = table_decoder(manifest, [near])
    assert texts(decoder.decode_result("1", beam_size=2, n_best=2)) == ["te", "oe"]


def test_constant_step_inputs_follow_their_beams_through_batches(manifest):
    """Each input's constant step input (an attention decoder's encoder outputs) is replicated to its beams and
    reordered with them; the step checks it against the row's state at every call."""
    tables = [GARDEN_PATH, LENGTHS, AT_THE_LIMIT, {"": {"x": 1.0}}]
    decoder, model = table_decoder(manifest, tables, constant=True)
    inputs = ["3", "1", "2", "4", "1", "3"]
    batched = decoder.decode_batch_results(inputs, beam_size=3, n_best=3)
    # "4" has one likely output: the rest of its beam is the most probable of the impossible ones (all 1e-45),
    # broken by ids: the empty output (the end id, 2) and the smallest token; never pad or start, which no output
    # holds (the Keras reference renders them as nothing, so a beam holding them failed the gate)
    assert [texts(r) for r in batched] == [["one", "tw", "on"], ["tw", "on", "oe"], ["o", "one", "t"],
                                           ["x", "", "e"], ["tw", "on", "oe"],
                                           ["one", "tw", "on"]]
    assert batched == [decoder.decode_result(s, beam_size=3, n_best=3) for s in inputs]
    assert max(model.rows_seen) == 3 * len(inputs)


def test_rows_per_step_call_are_bounded(manifest, monkeypatch):
    decoder, model = table_decoder(manifest, [GARDEN_PATH, LENGTHS])
    inputs = ["1", "2"] * 5
    expected = decoder.decode_batch_results(inputs, beam_size=4, n_best=2)
    model.rows_seen.clear()
    monkeypatch.setattr(beam, "MAX_BEAM_ROWS", 9)  # two inputs of four beams at a time
    assert decoder.decode_batch_results(inputs, batch_size=32, beam_size=4, n_best=2) == expected
    assert max(model.rows_seen) == 8
    monkeypatch.setattr(beam, "MAX_BEAM_ROWS", 2)  # a beam wider than the bound: one input at a time
    assert decoder.decode_batch_results(inputs, beam_size=4, n_best=2) == expected


# ---- the parity gate's reference implements the same rules ---------------------------------------------------
class KerasLike:
    """What ``train.reference.beam_search`` uses of a KerasDecoder, around a TableModel."""

    def __init__(self, decoder: Seq2SeqDecoder, model: TableModel):
        self.max_output_tokens = decoder.max_output_len
        names = [t.name for m in decoder.manifest.models if m.role == mf.DECODER_STEP for t in m.inputs]
        self.step = type("Step", (), {"inputs": [type("Input", (), {"name": n}) for n in names]})()
        self.model = model

    def encode(self, input_ids):
        return self.model.encode({mf.INPUT_IDS: input_ids})

    def _call(self, _step, feeds):
        return self.model.run_step(feeds)


def _random_distributions(seed: int, vocab_size: int):
    """Distributions over few tokens with small integer weights: exact ties everywhere, deterministic per
    (table, prefix). Odd seeds give pad and start weight too, as a weak model may."""
    def distribution(table, prefix):
        rng = np.random.default_rng([seed, table, zlib.crc32(prefix.encode())])
        weights = np.zeros(vocab_size)
        tokens = rng.choice(np.arange(2 - 2 * (seed % 2), vocab_size), size=rng.integers(1, 5), replace=False)
        weights[tokens] = rng.integers(1, 4, size=tokens.size)
        return (weights / weights.sum()).astype(np.float32)
    return distribution


@pytest.mark.parametrize("seed", range(6))
def test_runtime_and_reference_search_agree_exactly(manifest, seed):
    reference = pytest.importorskip("seq2seq_edge.train.reference")
    vocab = manifest.preprocessing.target_vocabulary
    decoder, model = table_decoder(manifest, [{}] * 9, constant=seed % 2 == 1,
                                   fallback=_random_distributions(seed, len(vocab)))
    keras_like = KerasLike(decoder, model)
    inputs = [[i] for i in range(3, 12)]
    (input_ids,) = padded_batches(inputs, 32, manifest.encoder_time_steps)
    for beam_size, alpha in ((2, 0.0), (3, 0.0), (3, 0.8), (5, 0.0), (8, 2.0)):
        got = decoder.decode_ids(inputs, beam_size=beam_size, n_best=beam_size, length_penalty=alpha)
        margins = []
        want = reference.beam_search(keras_like, input_ids, beam_size, beam_size, alpha, margins=margins)
        assert len(margins) == len(inputs)
        for g, w in zip(got, want):
            assert [(r.tokens, r.token_probs, r.finished, r.score) for r in (g, *g.alternatives)] == \
                [(tuple(vocab[i] for i in h.ids), h.probs, h.finished, h.score) for h in w]
            assert not {r.tokens[i] for r in (g, *g.alternatives) for i in range(len(r.tokens))} & set(
                text.SPECIAL_TOKENS)  # no output holds a reserved token


def test_reference_reports_close_calls(manifest):
    reference = pytest.importorskip("seq2seq_edge.train.reference")
    ties = {"": {"o": 0.5, "t": 0.5}, "o": {"n": 0.5, "e": 0.5}, "t": {"w": 0.5, "e": 0.5}}
    decoder, model = table_decoder(manifest, [GARDEN_PATH, ties])
    margins = []
    (input_ids,) = padded_batches([[3], [4]], 32, manifest.encoder_time_steps)
    found = reference.beam_search(KerasLike(decoder, model), input_ids, 2, 2, margins=margins)
    assert [["".join(model.vocab[i] for i in h.ids) for h in hyps] for hyps in found] == [["tw", "on"], ["oe", "on"]]
    # the garden path's closest call: "on" (0.24) kept against "ow" and "oe" (0.18), log(0.24 / 0.18)
    assert margins[0] == pytest.approx(math.log(0.24 / 0.18), abs=1e-6)
    assert margins[1] == 0.0  # exact ties


def test_gate_beam_check_excuses_only_numerical_ties(manifest):
    parity = pytest.importorskip("seq2seq_edge.export.parity")
    decoder, _ = table_decoder(manifest, [GARDEN_PATH, LENGTHS, AT_THE_LIMIT])
    sources = ["1", "2", "3"]
    right = [[(h.text, h.finished, h.score) for h in (r, *r.alternatives)]
             for r in decoder.decode_batch_results(sources, beam_size=4, n_best=4)]
    assert [[h[0] for h in hyps] for hyps in right] == [["tw", "on", "oe", "ow"], ["o", "one", "t", "onw"],
                                                        ["one", "tw", "on", "two"]]
    swapped = [right[0], right[1][::-1], right[2]]
    unfinished = [right[0], right[1], right[2][:3] + [("two", False, right[2][3][2])]]
    off = [[(t, f, score + 1e-3) for t, f, score in hyps] for hyps in swapped]  # Keras' scores 1e-3 away
    for lists, margins, ties, differs, tolerance in [
            (right, [1.0, 1.0, 1.0], 0, None, 1e-4),
            (swapped, [1.0, 5e-5, 1.0], 1, None, 1e-4),  # Keras' search met a numerical tie: excused
            (swapped, [1.0, 5e-3, 1.0], 0, "2", 1e-4),
            (off, [1.0, 5e-3, 1.0], 1, None, 1e-2),  # ten times the score difference seen
            (unfinished, [1.0, 1.0, 1.0], 0, "3", 1e-4)]:
        report = parity.VariantReport("tflite", "fp32", "table", 1.0, 1.0, 0.0, {parity.mf.PROBS: 0.0})
        parity._beam_figures(report, decoder, sources, parity.KerasBeams(lists, margins))
        assert (report.beam_agreement, report.beam_near_ties) == (pytest.approx(2 / 3 if ties or differs else 1), ties)
        assert report.beam_tie_tolerance == pytest.approx(tolerance)
        reason = parity._failure(report, 1.0)
        if differs is None:
            assert reason == "" and report.beam_disagreements == []
        else:
            assert reason == (f"beam search (beam 4): n-best lists equal Keras' for 66.67% of 3 inputs, 0 "
                              f"numerical tie(s) excused, the others differ (first: input {differs!r})")
            assert [d["input"] for d in report.beam_disagreements] == [differs]


@requires_train
def test_gate_fails_when_the_exported_search_differs(fixture_dir, monkeypatch):
    from seq2seq_edge.errors import ExportError
    from seq2seq_edge.export import parity, verify_bundle

    search = beam.search
    monkeypatch.setattr(beam, "search", lambda *a, **k: [hyps[::-1] for hyps in search(*a, **k)])
    monkeypatch.setattr(parity, "GATE_BEAM_INPUTS", 5)  # of the digits' 9
    with pytest.raises(ExportError, match=r"parity gate failed: tflite fp32: beam search \(beam 4\): n-best lists "
                                          r"equal Keras' for 0.00% of 5 inputs, 0 numerical tie\(s\) excused"):
        verify_bundle(fixture_dir / "bundles" / "digits", fixture_dir / "runs" / "digits")


# ---- the fixture bundles -------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend,variant", ALL_VARIANTS)
@pytest.mark.parametrize("bundle_name", ["digits", "numbers"])
def test_beam_1_is_greedy_exactly(fixture_dir, bundle_name, backend, variant):
    bundle = fixture_dir / "bundles" / bundle_name
    decoder = seq2seq_edge.load(bundle, backend=backend, variant=variant)
    inputs = golden_inputs(bundle)
    greedy = decoder.decode_batch_results(inputs)
    assert decoder.decode_batch_results(inputs, beam_size=1) == greedy
    assert decoder.decode_batch_results(inputs, beam_size=1, n_best=1, length_penalty=0.6) == greedy
    assert decoder.decode_batch(inputs, beam_size=1) == [r.text for r in greedy]
    capped = decoder.decode_batch_results(inputs[:20], max_output_len=2)
    assert decoder.decode_batch_results(inputs[:20], max_output_len=2, beam_size=1) == capped
    # one at a time (onnx int8 quantizes a whole batch with one scale: compare like with like)
    assert decoder.decode_result(inputs[0], beam_size=1) == decoder.decode_result(inputs[0])


@pytest.mark.parametrize("backend,variant", FP32)
def test_beam_results_on_the_numbers_bundle(numbers_bundle, backend, variant):
    decoder = seq2seq_edge.load(numbers_bundle, backend=backend, variant=variant)
    inputs = golden_inputs(numbers_bundle)[:60] + ["7", "", "512"]
    results = decoder.decode_batch_results(inputs, beam_size=4, n_best=4)
    assert decoder.decode_batch_results(inputs, beam_size=4, n_best=4) == results  # deterministic
    # batched equals one at a time, and other batch sizes: the same lists (LiteRT's float encoder takes another
    # kernel at batch 1, so probabilities may differ in the last bits)
    for other in ([decoder.decode_result(s, beam_size=4, n_best=4) for s in inputs],
                  decoder.decode_batch_results(inputs, batch_size=7, beam_size=4, n_best=4)):
        assert [n_best(r) for r in other] == [n_best(r) for r in results]
        assert [h.score for r in other for h in (r, *r.alternatives)] == pytest.approx(
            [h.score for r in results for h in (r, *r.alternatives)], abs=1e-5)
    assert results[-2] == decoder.decode_result("")  # no tokens: no search
    assert decoder.decode_batch(inputs, beam_size=4) == [r.text for r in results]
    for result in results[:-2] + results[-1:]:
        hypotheses = (result, *result.alternatives)
        assert len(hypotheses) == 4
        scores = [h.score for h in hypotheses]
        assert scores == sorted(scores, reverse=True)
        assert len({h.text for h in hypotheses}) == 4  # distinct
        assert all(h.alternatives == () for h in result.alternatives)
        for h in hypotheses:
            assert len(h.token_probs) == len(h.tokens) + h.finished
            assert h.score == pytest.approx(float(np.sum(np.log(h.token_probs))), abs=1e-9)
            assert " ".join(h.tokens) == h.text
            assert h.finished or len(h.tokens) == decoder.max_output_len
    # fewer alternatives than asked is not an error; n_best 2 is a prefix of n_best 4 with the same beam
    two = decoder.decode_batch_results(inputs, beam_size=4, n_best=2)
    assert [texts(r) for r in two] == [texts(r)[:2] for r in results[:-2]] + [[""]] + [texts(results[-1])[:2]]
    # the length limit leaves hypotheses unfinished, with as many probabilities as tokens
    capped = decoder.decode_result("777", beam_size=3, n_best=3, max_output_len=1)
    for h in (capped, *capped.alternatives):
        assert len(h.tokens) <= 1 and len(h.token_probs) == len(h.tokens) + h.finished


def test_beam_options_are_checked(digits_bundle):
    decoder = seq2seq_edge.load(digits_bundle)
    assert texts(decoder.decode_result("1", n_best=2)) == texts(decoder.decode_result("1", beam_size=2, n_best=2))
    for kwargs, error, message in [
            (dict(beam_size=0), ValueError, "beam_size must be between 1 and 64, got 0"),
            (dict(beam_size=65), ValueError, "beam_size must be between 1 and 64, got 65"),
            (dict(beam_size=2, n_best=3), ValueError, r"n_best \(3\) cannot exceed beam_size \(2\)"),
            (dict(n_best=0), ValueError, "n_best must be between 1 and 64, got 0"),
            (dict(beam_size=2, length_penalty=-0.5), ValueError, "length_penalty must be between 0 and 10, got -0.5"),
            (dict(beam_size=2, length_penalty=float("nan")), ValueError, "length_penalty must be between 0 and 10"),
            (dict(beam_size=2.0), TypeError, "beam_size must be an int, not float"),
            (dict(beam_size=True), TypeError, "beam_size must be an int, not bool"),
            (dict(beam_size=2, length_penalty="1"), TypeError, "length_penalty must be a number, not str")]:
        with pytest.raises(error, match=message):
            decoder.decode("1", **kwargs)
        with pytest.raises(error, match=message):
            decoder.decode_batch(["1", "2"], **kwargs)
    assert options.MAX_BEAM_SIZE == 64


# ---- s2s run ---------------------------------------------------------------------------------------------------
DIGITS_TOP_2 = [["one", "on"], ["two", "tw"], ["three", "thre"], ["four", "ofur"], ["five", "fivee"], ["six", "si"],
                ["seven", "seve"], ["eight", "eigtt"], ["nine", "nnie"]]


def test_run_beam_n_best_json_and_text(digits_bundle):
    digits = [str(d) for d in range(1, 10)]
    rc, out, err = s2s("run", digits_bundle, "--beam", "2", "--n-best", "2", "--json", *digits)
    assert rc == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["input"] for r in records] == digits
    assert [[h["output"] for h in r["n_best"]] for r in records] == DIGITS_TOP_2
    assert [r["output"] for r in records] == [pair[0] for pair in DIGITS_TOP_2]
    assert all(h["finished"] for r in records for h in r["n_best"])
    decoder = seq2seq_edge.load(digits_bundle, backend=records[0]["backend"])
    for r, want in zip(records, decoder.decode_batch_results(digits, beam_size=2, n_best=2)):
        assert [h["score"] for h in r["n_best"]] == [round(w.score, 6) for w in (want, *want.alternatives)]
        assert r["score"] == r["n_best"][0]["score"]
    rc, out, _ = s2s("run", digits_bundle, "--beam", "2", "--n-best", "2", stdin=b"1\n\n7\n")
    assert (rc, out) == (0, "one\ton\n\nseven\tseve\n")
    rc, out, _ = s2s("run", digits_bundle, "--n-best", "3", "--length-penalty", "0.6", "3")
    assert rc == 0 and out.count("\t") == 2 and out.startswith("three\t")
    rc, out, _ = s2s("run", digits_bundle, "--beam", "3", "--json", "9")
    record = json.loads(out)
    assert record["output"] == "nine" and "n_best" not in record


@pytest.mark.parametrize("flags, message", [
    (["--beam", "0"], "--beam must be between 1 and 64, got 0"),
    (["--beam", "65"], "--beam must be between 1 and 64, got 65"),
    (["--n-best", "0"], "--n-best must be between 1 and 64, got 0"),
    (["--n-best", "100"], "--n-best must be between 1 and 64, got 100"),
    (["--beam", "2", "--n-best", "3"], "--n-best (3) cannot exceed --beam (2)"),
    (["--length-penalty", "-1"], "--length-penalty must be between 0 and 10, got -1.0"),
    (["--length-penalty", "nan"], "--length-penalty must be between 0 and 10, got nan"),
    (["--length-penalty", "11"], "--length-penalty must be between 0 and 10, got 11.0"),
])
def test_run_refuses_bad_beam_flags_before_loading(tmp_path, flags, message):
    rc, out, err = s2s("run", tmp_path / "no-bundle", *flags, "1")  # checked before the bundle is looked at
    assert (rc, out) == (2, "")
    assert one_error_line(err) == f"s2s run: error: {message}"


def test_run_refuses_a_beam_that_is_not_a_number(digits_bundle):
    rc, _, err = s2s("run", digits_bundle, "--beam", "two", "1")
    assert rc == 2 and one_error_line(err) == ("s2s run: error: argument --beam: invalid int value: 'two' "
                                               "(s2s run --help lists the options)")
