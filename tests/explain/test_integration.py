"""The explain section on the built-in sentiment classifier (slow: trains it on first use)."""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from raikit.audits.sections import RunContext
from raikit.explain import SECTION, ExplainOptions


@pytest.mark.integration
def test_explain_builtin_sentiment():
    from raikit.audits import load_model

    clf = load_model("builtin:minilm-sentiment", device="cpu", progress=False)
    options = dataclasses.replace(ExplainOptions(), texts=["I love this, it's wonderful!", "Awful service today."],
                                  shap_max_evals=120, lime_num_samples=120)
    t0 = time.perf_counter()
    result = SECTION.run(clf, options, RunContext(seed=0, progress=False))
    seconds = time.perf_counter() - t0
    assert seconds < 40, seconds
    for method in ("shap", "lime", "attention", "rollout", "random"):
        assert np.isfinite(result.metrics[f"{method}.comprehensiveness"].value)
    assert result.metrics["agreement.shap_vs_lime"].n == 2
    first = result.details["texts"][0]
    assert first["predicted"] == "positive"
    shap_scores = first["attributions"]["shap"]
    assert first["words"][int(np.argmax(shap_scores))] in {"love", "wonderful"}
    base = first["base_values"]["shap"]
    assert base + sum(shap_scores) == pytest.approx(first["probabilities"]["positive"], abs=1e-4)
