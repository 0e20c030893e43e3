"""Decode-time ensembles (``seq2seq_edge.load_ensemble``, ``s2s run/eval --ensemble``): the members' steps averaged
in log-probability, on every installed backend; what an ensemble refuses, and how it says so."""

from __future__ import annotations

import json

import numpy as np
import pytest

import seq2seq_edge
from seq2seq_edge import backends
from seq2seq_edge import manifest as mf
from seq2seq_edge import text
from seq2seq_edge.ensemble import MAX_MEMBERS
from seq2seq_edge import OptionError
from seq2seq_edge.errors import BundleError

from conftest import requires_train
from support import s2s

BACKENDS = [b for b in ("litert", "tflite", "onnx") if backends.is_installed(b)]


def _inputs(fixture_dir, name: str) -> list[str]:
    return [item["input"] for item in
            json.loads((fixture_dir / "bundles" / name / mf.GOLDEN_FILE).read_text(encoding="utf-8"))["items"]]


class _WrittenOut:
    """The members' encoders and steps run one by one for one input: ``next_distribution()`` is the ensemble's
    distribution over the next token (the normalized mean of the members' log-probabilities), ``feed(token)``
    gives every member that token and its own next state."""

    def __init__(self, members, ids: list[int]):
        input_ids = np.array([ids + [0] * (members[0].manifest.encoder_time_steps - len(ids))], np.int32)
        self.members = members
        self.feeds = [m.internals.first_feeds(input_ids) for m in members]
        self.outs = []

    def next_distribution(self) -> np.ndarray:
        self.outs = [m.internals.decoder_step.run(f) for m, f in zip(self.members, self.feeds)]
        mean = sum(np.log(np.maximum(o[mf.PROBS][0].astype(np.float64), 1e-30)) for o in self.outs) / len(self.outs)
        dist = np.exp(mean - mean.max())
        return dist / dist.sum()

    def feed(self, token: int) -> None:
        for f, o in zip(self.feeds, self.outs):
            f.update({mf.PREV_TOKEN: np.array([token], np.int32), mf.STATE_H: o[mf.NEXT_STATE_H],
                      mf.STATE_C: o[mf.NEXT_STATE_C]})


def _by_hand(members, ids: list[int], limit: int) -> list[int]:
    """Greedy decoding of one input, written out: the argmax of the ensemble's distribution fed back to all."""
    steps, chosen = _WrittenOut(members, ids), []
    for _ in range(limit + 1):
        token = int(steps.next_distribution().argmax())
        if token == text.END_ID:
            break
        chosen.append(token)
        steps.feed(token)
    return chosen


def _forced_probs(members, ids: list[int], tokens: list[int], finished: bool) -> list[float]:
    """The ensemble's probability of each of ``tokens`` (and of the end marker when ``finished``) after the ones
    before it, written out: what a hypothesis's ``token_probs`` must be."""
    steps, probs = _WrittenOut(members, ids), []
    for token in tokens + ([text.END_ID] if finished else []):
        probs.append(float(steps.next_distribution()[token]))
        steps.feed(token)
    return probs


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_bundles_decode_as_their_averaged_steps(fixture_dir, backend):
    """attention and embeddings: the same data and tokens, other models (one layer against two stacked, states of
    other widths)."""
    bundles = [fixture_dir / "bundles" / n for n in ("attention", "embeddings")]
    ensemble = seq2seq_edge.load_ensemble(bundles, backend=backend)
    members = ensemble.members
    inputs = _inputs(fixture_dir, "attention")
    prep = ensemble.preprocessing
    want = [prep.decode_output(_by_hand(members, prep.encode_input(x), ensemble.max_output_len)) for x in inputs]
    assert ensemble.decode_batch(inputs, batch_size=7) == want
    assert [ensemble.decode(x) for x in inputs[:20]] == want[:20]
    singles = [m.decode_batch(inputs) for m in members]
    assert singles[0] != singles[1]  # two models that disagree somewhere: the test can tell them apart
    assert ensemble.decode_path == "step-loop"
    for x in inputs[:10]:
        result = ensemble.decode_result(x)
        assert "".join(ensemble.stream(x)) == result.text
        assert all(0 < p <= 1 for p in result.token_probs) and result.finished


def test_beam_search_over_two_bundles_scores_each_hypothesis_as_the_members_steps_do(fixture_dir):
    """Beam search reorders the members' joined states and attention memories with its beams: every hypothesis'
    probabilities are those of its tokens fed through the members one by one."""
    b = fixture_dir / "bundles"
    ensemble = seq2seq_edge.load_ensemble([b / "embeddings", b / "attention"])
    vocab = {t: i for i, t in enumerate(ensemble.preprocessing.target_vocabulary)}
    inputs = _inputs(fixture_dir, "attention")[:24]
    checked = 0
    for x, result in zip(inputs, ensemble.decode_batch_results(inputs, beam_size=4, n_best=3, batch_size=8)):
        for h in (result, *result.alternatives):
            want = _forced_probs(ensemble.members, ensemble.preprocessing.encode_input(x),
                                 [vocab[t] for t in h.tokens], h.finished)
            np.testing.assert_allclose(h.token_probs, want, rtol=1e-4, atol=1e-6)
            checked += 1
    assert checked > len(inputs)  # runners-up too


@pytest.mark.parametrize("name", ["numbers", "embeddings"])
def test_a_bundle_with_itself_decodes_as_the_bundle(fixture_dir, name):
    """The geometric mean of one distribution is that distribution: greedy and beam search give the bundle's own
    texts, tokens and probabilities."""
    bundle = fixture_dir / "bundles" / name
    single = seq2seq_edge.load(bundle, one_call=False)
    ensemble = seq2seq_edge.load_ensemble([bundle, bundle])
    inputs = _inputs(fixture_dir, name)[:40]
    for options in ({}, {"beam_size": 3, "n_best": 2}):
        got, want = ensemble.decode_batch_results(inputs, **options), single.decode_batch_results(inputs, **options)
        assert [(r.text, r.tokens, [a.text for a in r.alternatives]) for r in got] == \
               [(r.text, r.tokens, [a.text for a in r.alternatives]) for r in want]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.token_probs, w.token_probs, atol=1e-5)


def test_bundles_that_do_not_fit_together_are_refused_naming_the_bundle(fixture_dir):
    b = fixture_dir / "bundles"
    with pytest.raises(BundleError, match=r"bundles/digits: its preprocessing differs from the first bundle's "
                                          r"\(preprocessing\.input\.max_tokens\)"):
        seq2seq_edge.load_ensemble([b / "numbers", b / "digits"])
    with pytest.raises(BundleError, match=r"bundles/attention: its architecture 'lstm-attention' is not the first "
                                          r"bundle's 'lstm-encoder-decoder'"):
        seq2seq_edge.load_ensemble([b / "numbers", b / "attention"])
    with pytest.raises(OptionError, match=f"2 to {MAX_MEMBERS} bundles, got 1"):
        seq2seq_edge.load_ensemble([b / "numbers"])
    with pytest.raises(OptionError, match=f"got {MAX_MEMBERS + 1}"):
        seq2seq_edge.load_ensemble([b / "numbers"] * (MAX_MEMBERS + 1))
    with pytest.raises(TypeError, match="a list of bundle folders"):
        seq2seq_edge.load_ensemble(str(b / "numbers"))


class _Inflated:
    """A decoder step that says one token has probability 1e6 (what check_outputs refuses from one bundle)."""
    label = "inflated decoder step"

    def __init__(self, step):
        self.step = step

    def run(self, feeds):
        out = dict(self.step.run(feeds))
        out[mf.PROBS] = out[mf.PROBS].copy()
        out[mf.PROBS][:, 5] = 1e6
        return out


def test_a_member_that_emits_no_probability_is_refused_not_averaged_in(fixture_dir):
    from seq2seq_edge.decoder import Seq2SeqDecoder

    b = fixture_dir / "bundles"
    good = seq2seq_edge.load(b / "attention", one_call=False)
    other = seq2seq_edge.load(b / "embeddings", backend=good.backend, one_call=False)
    bad = Seq2SeqDecoder(other.manifest, other.internals.encoder, _Inflated(other.internals.decoder_step),
                         backend=other.backend, variant=other.variant, bundle_dir=other.bundle_dir)
    with pytest.raises(BundleError, match=r"inflated decoder step: the model gave a probability of 1000000\.0"):
        bad.decode("7")
    for members in ([good, bad], [bad, good]):
        with pytest.raises(BundleError, match=r"inflated decoder step: the model gave a probability of 1000000\.0"):
            seq2seq_edge.EnsembleDecoder(members).decode("7")


def test_members_are_single_bundles_on_one_backend(fixture_dir):
    b = fixture_dir / "bundles"
    pair = seq2seq_edge.load_ensemble([b / "attention", b / "embeddings"])
    with pytest.raises(TypeError, match="decoders of one bundle each"):
        seq2seq_edge.EnsembleDecoder([pair, pair.members[0]])
    if len(BACKENDS) > 1:
        mixed = [seq2seq_edge.load(b / "attention", backend=BACKENDS[0], one_call=False),
                 seq2seq_edge.load(b / "embeddings", backend=BACKENDS[1], one_call=False)]
        with pytest.raises(BundleError, match=f"loaded on {BACKENDS[1]} fp32, the first bundle on {BACKENDS[0]} fp32"):
            seq2seq_edge.EnsembleDecoder(mixed)


def test_members_trained_on_other_splits_are_decoded_with_a_warning(fixture_dir, tmp_path, caplog):
    """A manifest says which split its training held out: the other bundle's test pairs may be this one's
    training pairs, so scores on them would not be held out from the ensemble."""
    import shutil

    b = fixture_dir / "bundles"
    other = tmp_path / "embeddings-split-7"
    shutil.copytree(b / "embeddings", other)
    manifest = json.loads((other / mf.MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["provenance"]["training"]["split_seed"] = 7
    (other / mf.MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with caplog.at_level("WARNING", logger="seq2seq_edge.ensemble"):
        seq2seq_edge.load_ensemble([b / "attention", b / "embeddings"])
    assert not caplog.records
    with caplog.at_level("WARNING", logger="seq2seq_edge.ensemble"):
        ensemble = seq2seq_edge.load_ensemble([b / "attention", other])
    assert [r.getMessage() for r in caplog.records] == [
        f"{other} held out other pairs than {b / 'attention'} ({{'task': 'numbers', 'validation_fraction': 0.1, "
        f"'test_fraction': 0.1, 'split_seed': 7}} against {{'task': 'numbers', 'validation_fraction': 0.1, "
        f"'test_fraction': 0.1, 'split_seed': 0}}): scores of the ensemble on either's validation or test split "
        f"count pairs the other was trained on"]
    assert ensemble.decode("7") == seq2seq_edge.load_ensemble([b / "attention", b / "embeddings"]).decode("7")


def test_s2s_run_and_eval_decode_with_an_ensemble(fixture_dir, tmp_path):
    b = fixture_dir / "bundles"
    inputs = _inputs(fixture_dir, "attention")[:12]
    want = seq2seq_edge.load_ensemble([b / "attention", b / "embeddings"]).decode_batch(inputs)
    rc, out, err = s2s("run", b / "attention", "--ensemble", b / "embeddings", stdin="\n".join(inputs).encode())
    assert (rc, out.splitlines(), err) == (0, want, "")
    rc, out, _ = s2s("run", b / "attention", "--ensemble", b / "embeddings", "--json", inputs[0])
    assert rc == 0 and json.loads(out)["output"] == want[0] and json.loads(out)["path"] == "step-loop"

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{x}\t{y}\n" for x, y in zip(inputs, want)), encoding="utf-8")
    rc, out, err = s2s("run", b / "attention", "--ensemble", b / "embeddings", "--input", pairs, "--workers", "1",
                       "--output", tmp_path / "out.tsv")
    assert rc == 0 and [line.split("\t")[1] for line in (tmp_path / "out.tsv").read_text().splitlines()] == want
    rc, out, err = s2s("eval", b / "attention", pairs, "--ensemble", b / "embeddings", "--json")
    report = json.loads(out)
    assert (rc, report["exact_match"], report["ensemble"]) == (0, 1.0, [str(b / "embeddings")])


@pytest.mark.parametrize("args, message", [
    (["7", "--ensemble", "{b}/digits"], "{b}/digits: its preprocessing differs from the first bundle's "
                                   "(preprocessing.input.max_tokens)"),
    (["7", "--ensemble", "{b}/numbers", "--one-call"], "--one-call: an ensemble decodes by the step loop"),
    (["--ensemble", "{b}/numbers", "--input", "{tmp}/in.txt"], "--ensemble with --input decodes in this process: "
                                                               "add --workers 1"),
    (["7", "--ensemble", "{tmp}/missing"], "{tmp}/missing"),
])
def test_s2s_run_refuses_an_ensemble_it_cannot_decode_in_one_line(fixture_dir, tmp_path, args, message):
    b = fixture_dir / "bundles"
    (tmp_path / "in.txt").write_text("7\n", encoding="utf-8")
    args = [a.format(b=b, tmp=tmp_path) for a in args]
    rc, out, err = s2s("run", b / "numbers", *args)
    assert rc == 2 and out == ""
    assert err.startswith("s2s run: error: ") and message.format(b=b, tmp=tmp_path) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_an_ensemble_decodes_files_in_this_process_only(fixture_dir, tmp_path):
    """decode_file with an ensemble: one worker decodes with it; worker processes, which load one bundle each from
    its folder, are refused (they would decode with one member)."""
    from seq2seq_edge.scale.batch_files import decode_file
    from seq2seq_edge.errors import Seq2SeqEdgeError

    b = fixture_dir / "bundles"
    ensemble = seq2seq_edge.load_ensemble([b / "attention", b / "embeddings"])
    inputs = _inputs(fixture_dir, "attention")[:30]
    (tmp_path / "in.txt").write_text("\n".join(inputs) + "\n", encoding="utf-8")
    decode_file(ensemble, str(tmp_path / "in.txt"), str(tmp_path / "out.txt"), workers=1, progress=False)
    assert (tmp_path / "out.txt").read_text(encoding="utf-8").splitlines() == ensemble.decode_batch(inputs)
    with pytest.raises(Seq2SeqEdgeError, match="decode with one worker \\(an ensemble decodes in this process\\)"):
        decode_file(ensemble, str(tmp_path / "in.txt"), str(tmp_path / "out2.txt"), workers=2, progress=False)
    assert not (tmp_path / "out2.txt").exists()


# ---- one bundle of several models (s2s export --ensemble) ----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_ensemble_bundle_decodes_as_its_models_bundles_decode_together(fixture_dir, backend):
    """The fixture ``ensemble`` is attention's and embeddings' runs exported as one bundle: greedy (its one-call
    model and its step loop) and beam search give what load_ensemble gives over the two bundles, and it loads as
    any bundle, its state the two models' side by side."""
    b = fixture_dir / "bundles"
    manifest = mf.BundleManifest.load(b / "ensemble")
    members = [mf.BundleManifest.load(b / n) for n in ("attention", "embeddings")]
    assert manifest.latent_dim == sum(m.latent_dim for m in members)
    assert manifest.encoder_output_dim == sum(m.encoder_output_dim for m in members)
    inputs = _inputs(fixture_dir, "ensemble")
    assert inputs == _inputs(fixture_dir, "attention")
    together = seq2seq_edge.load_ensemble([b / "attention", b / "embeddings"], backend=backend)
    want = together.decode_batch(inputs)
    assert want != seq2seq_edge.load(b / "attention", backend=backend).decode_batch(inputs)  # it can tell
    for one_call in (True, False):
        bundle = seq2seq_edge.load(b / "ensemble", backend=backend, one_call=one_call)
        assert bundle.decode_path == ("one-call" if one_call else "step-loop")
        assert bundle.decode_batch(inputs) == want
    got = bundle.decode_batch_results(inputs[:40], beam_size=4, n_best=3)
    ref = together.decode_batch_results(inputs[:40], beam_size=4, n_best=3)
    def n_best(results):
        return [[h.text for h in (r, *r.alternatives)] for r in results]

    assert n_best(got) == n_best(ref)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g.token_probs, r.token_probs, rtol=1e-4, atol=1e-6)


def test_an_ensemble_bundle_says_what_it_holds(fixture_dir):
    rc, out, err = s2s("info", fixture_dir / "bundles" / "ensemble")
    assert rc == 0, err
    lines = out.splitlines()
    at = lines.index("ensemble:  2 models, each step the normalized geometric mean of their distributions:")
    assert lines[at + 1].startswith("  1. run runs/attention: decoder attention, latent dim 16, seed 0, 2 encoder")
    assert lines[at + 2].startswith("  2. run runs/embeddings: decoder attention, latent dim 12, seed 0, attending")
    assert lines[1] == "task:      numbers (en, 0-999)"  # the models' settings are on their own lines


@requires_train
@pytest.mark.parametrize("runs, message", [
    (("attention", "digits"), "runs/digits: its preprocessing differs from {r}/attention's "
                              "(preprocessing.input.max_tokens): an ensemble's models must read and write the same "
                              "tokens"),
    (("attention", "numbers"), "runs/numbers: its model has no attention and {r}/attention's has: an ensemble's "
                               "models all have attention or none has"),
    (("attention",) * 9, "an ensemble has 2 to 8 models, not 9"),
])
def test_s2s_export_refuses_runs_that_cannot_decode_together_in_one_line(fixture_dir, tmp_path, runs, message):
    r = fixture_dir / "runs"
    ensemble = [a for name in runs[1:] for a in ("--ensemble", r / name)]
    rc, out, err = s2s("export", r / runs[0], *ensemble, "--out", tmp_path / "bundle")
    assert rc != 0 and not (tmp_path / "bundle").exists()
    assert err.startswith("s2s export: error: ") and message.format(r=r) in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@requires_train
def test_s2s_verify_checks_an_ensemble_bundle_against_its_runs_in_order(fixture_dir, tmp_path):
    """Found from the runs the manifest records (from the fixtures folder), or given with --run once per model in
    the export's order; the wrong order or count is refused before any gate runs."""
    r, bundle = fixture_dir / "runs", fixture_dir / "bundles" / "ensemble"
    rc, out, err = s2s("verify", bundle, "--run", r / "attention", "--run", r / "embeddings", "--quiet")
    assert rc == 0 and "parity gate passed on 200 inputs" in out, err
    rc, out, err = s2s("verify", bundle, "--quiet", cwd=fixture_dir)
    assert rc == 0 and "parity gate passed" in out, err
    for runs, message in [(["embeddings", "attention"], f"{r / 'embeddings'} is not model 1 of this ensemble"),
                          (["attention"], "the bundle holds 2 model(s) and 1 run folders were given")]:
        rc, out, err = s2s("verify", bundle, *[a for n in runs for a in ("--run", r / n)])
        assert rc != 0 and message in err and len(err.strip().splitlines()) == 1, err


@requires_train
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_exported_with_itself_decodes_as_its_own_bundle(fixture_dir, tmp_path_factory, backend):
    """The seed's architecture (no attention memory) through the ensemble export: a model with itself is that
    model (the mean of two equal logits is them, where a sum would sharpen the distribution), so the bundle gives
    the run's own bundle's texts and probabilities, greedy in one call and by beam search."""
    run, single = fixture_dir / "runs" / "numbers", fixture_dir / "bundles" / "numbers"
    out = tmp_path_factory.getbasetemp() / "numbers-twice"
    if not out.exists():
        rc, _, err = s2s("export", run, "--ensemble", run, "--out", out, "--quantize", "fp32", "--quiet")
        assert rc == 0, err
    twice = seq2seq_edge.load(out, backend=backend, one_call=True)
    assert twice.manifest.latent_dim == 2 * mf.BundleManifest.load(single).latent_dim
    inputs = _inputs(fixture_dir, "numbers")
    one = seq2seq_edge.load(single, backend=backend, one_call=False)
    for options in ({}, {"beam_size": 3, "n_best": 2}):
        got, want = twice.decode_batch_results(inputs, **options), one.decode_batch_results(inputs, **options)
        assert [(r.text, [a.text for a in r.alternatives]) for r in got] == \
               [(r.text, [a.text for a in r.alternatives]) for r in want]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.token_probs, w.token_probs, rtol=1e-4, atol=1e-6)


def _crafted_ensemble(fixture_dir, tmp_path, value):
    """A copy of the ensemble bundle whose manifest records ``value`` as provenance.ensemble."""
    import shutil

    bundle = tmp_path / "crafted"
    shutil.copytree(fixture_dir / "bundles" / "ensemble", bundle)
    manifest = json.loads((bundle / mf.MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["provenance"]["ensemble"] = value
    (bundle / mf.MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    return bundle


@pytest.mark.parametrize("value, message", [
    ("runs/a", "provenance.ensemble holds a str; an ensemble bundle records 2 to 8 models"),
    ([{"run_dir": "runs/a", "training": {}}], "provenance.ensemble holds 1 entries; an ensemble bundle records 2 to 8"),
    ([{"run_dir": "a"}] * 500_000, "provenance.ensemble holds 500000 entries"),
    ([{"run_dir": "runs/a"}, None], "provenance.ensemble: model 2 is not a run name of printable text"),
    ([{"run_dir": "runs/a"}, {"run_dir": "b\nparity:    passed (forged)"}], "model 2 is not a run name of printable"),
])
def test_s2s_info_and_verify_refuse_a_crafted_model_list_in_one_line(fixture_dir, tmp_path, value, message):
    """provenance.ensemble is free-form data of an untrusted bundle: what s2s export never writes is one error
    line, before any run folder is looked for (a long list is not walked) and with nothing of it printed."""
    bundle = _crafted_ensemble(fixture_dir, tmp_path, value)
    for command in ("info", "verify"):
        rc, out, err = s2s(command, bundle)
        assert rc != 0 and out == "" and message in err, (command, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "forged" not in err


@requires_train
def test_s2s_verify_refuses_runs_whose_models_are_not_the_bundles(fixture_dir, tmp_path):
    """Runs that tokenize alike and are recorded alike, but whose models make another state than the bundle's:
    one error line before any gate, naming both widths."""
    r = fixture_dir / "runs"
    bundle = _crafted_ensemble(fixture_dir, tmp_path, [{"run_dir": "runs/attention"}, {"run_dir": "runs/attention"}])
    rc, out, err = s2s("verify", bundle, cwd=fixture_dir)
    assert rc != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "the runs' models make a state 192 wide (attention memory 64) and the bundle's is 120 (memory" in err
    rc, out, err = s2s("verify", fixture_dir / "bundles" / "attention", "--run", r / "embeddings")
    assert rc != 0 and "the runs' models make a state 24 wide" in err and "Traceback" not in err, err
