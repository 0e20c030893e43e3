"""Peers outside this project, timed on the same words as the runtime: today the ``g2p_en`` package's numpy GRU
encoder-decoder (a grapheme-to-phoneme model trained on CMUdict), the decoder a CMUdict bundle competes with.

``g2p_en`` imports nltk and downloads tagger data when it is imported; nothing may download here, so its nltk
modules are replaced by stand-ins first, and only its own ``predict`` (the neural decode of one word) is timed:
its dictionary lookup, tokenizer and tagger are not part of the comparison.
"""

from __future__ import annotations

import importlib.util
import sys
import types

from . import runtime_bench

G2P_EN = "g2p_en"
PEERS = (G2P_EN,)


def available(name: str) -> bool:
    return name == G2P_EN and importlib.util.find_spec("g2p_en") is not None


def _stub_nltk() -> None:
    """Stand-ins for the parts of nltk that g2p_en touches at import and in G2p(): no data, no download."""
    if "nltk" in sys.modules and getattr(sys.modules["nltk"], "_seq2seq_edge_stub", False):
        return
    nltk = types.ModuleType("nltk")
    nltk._seq2seq_edge_stub = True
    nltk.pos_tag = lambda words: [(w, "NN") for w in words]
    nltk.data = types.SimpleNamespace(find=lambda name: name)
    nltk.download = lambda *a, **k: False
    corpus = types.ModuleType("nltk.corpus")
    corpus.cmudict = types.SimpleNamespace(dict=lambda: {})
    tokenize = types.ModuleType("nltk.tokenize")
    tokenize.TweetTokenizer = lambda: types.SimpleNamespace(tokenize=str.split)
    nltk.corpus, nltk.tokenize = corpus, tokenize
    sys.modules.update({"nltk": nltk, "nltk.corpus": corpus, "nltk.tokenize": tokenize})


def g2p_en_predictor():
    """g2p_en's ``G2p().predict``: a word (lowercase letters) -> its phonemes (with stress digits)."""
    _stub_nltk()
    from g2p_en import G2p

    return G2p().predict


def measure(name: str, words: list[str], s: dict) -> dict:
    """Per-word latency percentiles (ms) of the peer over the same word sample as the runtime rows, at 1 thread
    (numpy's own BLAS threads are whatever the process has: the harness runs with OMP/OPENBLAS threads at 1)."""
    sample = [w for w in runtime_bench.cycle(words, s["word_sample"]) if w.isalpha() and w.isascii()]
    if not sample:
        raise ValueError(f"{name} decodes words of letters; this bundle's golden inputs have none")
    predict = g2p_en_predictor()
    latency, _ = runtime_bench.per_call_ms(lambda w: predict(w.lower()), sample, warmup=s["word_warmup"])
    return {"name": name, "word_latency_ms": latency, "words": len(sample),
            "timed": "G2p().predict only (its neural decode), nltk stubbed"}
