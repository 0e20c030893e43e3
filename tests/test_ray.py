"""The Ray Data predictor (runtime/ray_predictor.py) on a local Ray cluster the test starts: 100,000 generated
lines, every output equal to the single-process runtime's. Needs the [ray] extra."""

import random
import time

import pytest

ray = pytest.importorskip("ray")

from seq2seq_edge import load  # noqa: E402
from seq2seq_edge.scale.ray_predictor import BundlePredictor, decode_dataset, pack_bundle  # noqa: E402

LINES = 100_000


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def test_ray_decodes_every_line_as_the_runtime_does(cluster, digits_bundle):
    rng = random.Random(0)
    inputs = [rng.choice("123456789") for _ in range(LINES - 2)] + ["12", "x"]  # the last two cannot be decoded
    expected = dict(zip("123456789", load(digits_bundle).decode_batch_results(list("123456789"))))
    ds = ray.data.from_items([{"id": i, "input": t} for i, t in enumerate(inputs)])
    started = time.perf_counter()
    rows = decode_dataset(ds, digits_bundle, ship=True, actors=2, threads_per_actor=1).take_all()
    seconds = time.perf_counter() - started
    print(f"\nray: {LINES} lines in {seconds:.1f} s ({LINES / seconds:,.0f} lines/s, 2 actors, startup included)")
    assert len(rows) == LINES
    rows.sort(key=lambda r: r["id"])
    assert [r["input"] for r in rows] == inputs
    for r in rows[:-2]:
        e = expected[r["input"]]
        assert (r["output"], r["finished"], r["error"]) == (e.text, e.finished, None)
        assert abs(r["score"] - e.score) <= 1e-5  # float32 sums: another batch may sum in another order
    assert [(r["output"], r["error"]) for r in rows[-2:]] == [
        ("", "input is 2 tokens long; the model takes at most 1"),
        ("", "input has 1 symbol(s) the model never saw: 'x'")]


def test_bundle_from_shared_storage_and_n_best(cluster, numbers_bundle):
    inputs = [str(i) for i in range(0, 1000, 7)]
    decoder = load(numbers_bundle)
    expected = decoder.decode_batch_results(inputs, beam_size=3)
    ds = ray.data.from_items([{"text": t} for t in inputs])
    rows = decode_dataset(ds, numbers_bundle, column="text", actors=1, beam_size=3).take_all()
    assert sorted((r["text"], r["output"]) for r in rows) == sorted(zip(inputs, (e.text for e in expected)))


def test_predictor_without_ray(digits_bundle):
    """The class is plain Python: what each actor runs, called directly."""
    import numpy as np

    predictor = BundlePredictor(bundle_files=pack_bundle(digits_bundle))
    out = predictor({"input": np.array(["3", "z"], dtype=object)})
    assert list(out["output"]) == ["three", ""] and list(out["finished"]) == [True, False]
    assert out["error"][1] == "input has 1 symbol(s) the model never saw: 'z'"
    with pytest.raises(ValueError, match="not both"):
        BundlePredictor(str(digits_bundle), bundle_files={})
