"""SEAT/WEAT: effect size and p-value against the definitions, real SEAT files, evaluate module."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from raikit.audits.errors import RaikitInputError
from raikit.audits.sections import RunContext
from raikit.fairness.evaluate_modules import module_path
from raikit.fairness.seat import SeatOptions, _run, load_seat_test, seat, weat, weat_effect_size, weat_p_value


def _cos(u, v):
    return float(u @ v / np.sqrt((u @ u) * (v @ v)))


def _reference(x, y, a, b):
    """Caliskan et al.'s definitions written out with loops."""
    def s(w):
        return np.mean([_cos(w, ai) for ai in a]) - np.mean([_cos(w, bi) for bi in b])
    sx, sy = [s(w) for w in x], [s(w) for w in y]
    effect = (np.mean(sx) - np.mean(sy)) / np.std(sx + sy, ddof=1)
    all_s = sx + sy
    observed = sum(sx)
    splits = list(itertools.combinations(range(len(all_s)), len(sx)))
    p = sum(sum(all_s[i] for i in c) >= observed - 1e-12 for c in splits) / len(splits)
    return effect, p


def test_matches_definitions_on_random_vectors():
    rng = np.random.default_rng(0)
    x, y, a, b = (rng.normal(size=(n, 5)) for n in (5, 5, 4, 6))
    x += 0.8 * a.mean(0)
    effect, p = _reference(x, y, a, b)
    assert weat_effect_size(x, y, a, b) == pytest.approx(effect)
    assert weat_p_value(x, y, a, b) == pytest.approx(p)
    sampled = weat_p_value(x, y, a, b, n_samples=100, seed=1)  # 252 splits > 100: sampled, biased by one
    assert abs(sampled - p) < 0.15


def test_known_by_construction():
    a, b = np.eye(4)[[0]] + 0.01, np.eye(4)[[1]] + 0.01
    x = np.array([[1, 0.1, 0, 0], [1, 0.2, 0.1, 0], [1, 0, 0.2, 0.1]])
    y = np.array([[0.1, 1, 0, 0], [0.2, 1, 0.1, 0], [0, 1, 0.2, 0.1]])
    res = weat(x, y, a, b, n_bootstrap=200)
    assert res.effect_size > 1.5 and res.p_value == pytest.approx(1 / 20)  # only the observed split
    assert weat(y, x, a, b, n_bootstrap=10).effect_size == pytest.approx(-res.effect_size)
    metric = pytest.importorskip("evaluate").load(module_path("seat"))
    out = metric.compute(embeddings=np.concatenate([x, y, a, b]).tolist(),
                         sets=["targ1"] * 3 + ["targ2"] * 3 + ["attr1", "attr2"], n_bootstrap=50)
    assert out["effect_size"] == pytest.approx(res.effect_size) and out["p_value"] == pytest.approx(res.p_value)


def test_no_association_when_targets_coincide():
    rng = np.random.default_rng(0)
    x, a, b = (rng.normal(size=(8, 16)) for _ in range(3))
    y = x + rng.normal(scale=1e-3, size=x.shape)  # the two target sets are the same words
    res = weat(x, y, a, b, n_bootstrap=500)
    assert abs(res.effect_size) < 0.01 and res.effect_ci[0] < 0 < res.effect_ci[1] and res.p_value > 0.3


def test_encoder_on_real_seat_files(random_encoder, shared_data):
    tests = [load_seat_test(shared_data / "seat" / f"{n}.jsonl") for n in ("weat6", "weat8")]
    result = seat(random_encoder, tests, n_samples=5000, n_bootstrap=100)
    t = tests[0]
    vecs = [random_encoder.embed(list(t.examples[k])) for k in ("targ1", "targ2", "attr1", "attr2")]
    assert result.tests[0].effect_size == pytest.approx(weat_effect_size(*vecs), abs=1e-5)
    lo, hi = result.tests[0].effect_ci
    assert lo <= result.tests[0].effect_size <= hi
    section = result.to_section()
    assert set(section.metrics) == {"weat6.effect_size", "weat6.p_value", "weat8.effect_size", "weat8.p_value"}
    assert section.metrics["weat6.effect_size"].n == 32


def test_bad_input(random_encoder, shared_data, tmp_path):
    ctx = RunContext(seed=0, data_dir=shared_data, progress=False)
    with pytest.raises(RaikitInputError, match="no SEAT test 'weat99'"):
        _run(random_encoder, SeatOptions(tests=["weat99"]), ctx)
    (tmp_path / "t.jsonl").write_text('{"targ1": {"category": "a", "examples": []}}')
    with pytest.raises(RaikitInputError, match="'targ1' missing or empty"):
        load_seat_test(tmp_path / "t.jsonl")


def test_identical_associations_give_an_undefined_effect_with_its_reason_not_a_crash():
    # every target embedding the same: s(w, A, B) is constant, its standard deviation 0 (a collapsed encoder)
    same = np.ones((3, 4))
    a, b = np.eye(4)[:2], np.eye(4)[2:]
    result = weat(same, same.copy(), a, b, n_samples=100, n_bootstrap=50)
    assert np.isnan(result.effect_size) and result.effect_ci is None
    assert "standard deviation" in result.undefined
    from raikit.fairness.seat import SeatResult
    import pandas as pd

    metric = SeatResult(tests=(result,), table=pd.DataFrame()).to_section().metrics["weat.effect_size"]
    assert metric.to_dict()["value"] is None and "undefined" in metric.details
