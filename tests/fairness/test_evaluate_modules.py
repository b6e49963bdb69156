"""The local evaluate modules load offline and give the same numbers as raikit's functions."""
from __future__ import annotations

import pytest

from raikit.audits.errors import RaikitInputError
from raikit.fairness.aul import aul_bias_score
from raikit.fairness.crows_pairs import crows_pairs_score
from raikit.fairness.evaluate_modules import available_modules, module_path
from raikit.fairness.stereoset import stereoset_score


def test_module_path_lists_known_on_error():
    assert {"crows_pairs", "stereoset", "aul"} <= set(available_modules())
    with pytest.raises(RaikitInputError, match="known: .*crows_pairs"):
        module_path("crows_pair")


def test_modules_compute_the_raikit_functions(monkeypatch, tmp_path):
    evaluate = pytest.importorskip("evaluate")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    more, less = [-3.0, -2.0004, -5.0, -1.0], [-4.0, -2.0001, -1.0, -2.5]
    directions, types = ["stereo", "antistereo", "stereo", "antistereo"], ["gender", "race", "gender", "race"]
    crows = evaluate.load(module_path("crows_pairs"), cache_dir=str(tmp_path))
    assert "Nangia" in crows.citation
    got = crows.compute(score_more=more, score_less=less, directions=directions, bias_types=types)
    want = crows_pairs_score(more, less, directions, types)
    assert {k: v for k, v in got.items() if k != "antistereotype_score"} == \
        {k: v for k, v in want.items() if k != "antistereotype_score"}
    assert got["antistereotype_score"] == pytest.approx(want["antistereotype_score"])

    ss = evaluate.load(module_path("stereoset"), cache_dir=str(tmp_path))
    args = dict(score_stereotype=[3.0, 3.0, 1.0], score_anti_stereotype=[2.0, 2.0, 1.0],
                score_unrelated=[1.0, 1.0, 1.5], targets=["a", "a", "b"], bias_types=["x", "x", "y"])
    assert ss.compute(**args) == stereoset_score(*args.values())

    aul = evaluate.load(module_path("aul"), cache_dir=str(tmp_path))
    got = aul.compute(score_stereotype=[-1.0, -2.0], score_anti_stereotype=[-2.0, -1.0], bias_types=["g", "r"])
    assert got == aul_bias_score([-1.0, -2.0], [-2.0, -1.0], ["g", "r"])
