"""The [explain] section end to end on the planted classifier, texts files, and bad input."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import tiny
from conftest import PLANTED

from raikit.audits import RaikitInputError, wrap_model
from raikit.audits.results import SectionResult
from raikit.audits.sections import RunContext
from raikit.explain import SECTION, ExplainOptions, ExplainSettings, explain, read_texts

FAST = ExplainOptions(shap_max_evals=100, lime_num_samples=150, top_k=2)


def test_section_declaration():
    assert SECTION.name == "explain" and SECTION.model_kinds == ("classifier",)
    assert SECTION.options is ExplainOptions
    assert ExplainOptions().methods == ["shap", "lime", "attention", "rollout"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        FAST.top_k = 5  # type: ignore[misc]


def test_section_run(planted_classifier, planted_test_texts, tmp_path):
    texts = [t for t, y in zip(*planted_test_texts) if y][:4] + [t for t, y in zip(*planted_test_texts) if not y][:2]
    options = dataclasses.replace(FAST, texts=texts[:3], texts_file="more.txt")
    (tmp_path / "more.txt").write_text("\n".join(texts[3:]) + "\n\n", encoding="utf-8")
    flagged = (f"the dog saw a {PLANTED}", "the cat sat on the mat")
    ctx = RunContext(seed=0, base_dir=tmp_path, progress=False, flagged_texts=flagged)
    result = SECTION.run(planted_classifier, options, ctx)
    assert isinstance(result, SectionResult)
    for method in ("shap", "lime", "attention", "rollout", "random"):
        for key in ("comprehensiveness", "sufficiency", "aopc"):
            metric = result.metrics[f"{method}.{key}"]
            assert metric.n == 6 and metric.ci95 is not None and np.isfinite(metric.value)
            assert metric.ci95[0] <= metric.value <= metric.ci95[1]
    assert result.metrics["shap.comprehensiveness"].value > result.metrics["random.comprehensiveness"].value
    assert {k for k in result.metrics if k.startswith("agreement.")} == {
        "agreement.shap_vs_lime", "agreement.shap_vs_attention", "agreement.shap_vs_rollout",
        "agreement.lime_vs_attention", "agreement.lime_vs_rollout", "agreement.attention_vs_rollout"}
    shap_lime = result.metrics["agreement.shap_vs_lime"]
    assert -1 <= shap_lime.value <= 1 and 0 <= shap_lime.details["top_k_overlap"] <= 1
    details = result.details
    assert len(details["texts"]) == 6 and len(details["flagged"]) == 2
    entry = details["texts"][0]
    assert entry["words"] == [entry["text"][s:e] for s, e in entry["spans"]]
    n = len(entry["words"])
    assert set(entry["attributions"]) == {"shap", "lime", "attention", "rollout", "random"}
    assert all(len(v) == n for v in entry["attributions"].values())
    assert np.array(entry["attention"]["last_layer_mean"]).shape == (n, n)
    assert np.array(entry["attention"]["rollout"]).shape == (n, n)
    top = entry["words"][int(np.argmax(entry["attributions"]["shap"]))]
    assert top == PLANTED
    flagged_entry = details["flagged"][0]
    assert flagged_entry["text"] == flagged[0] and "random" not in flagged_entry["attributions"]
    table = result.tables["faithfulness"]
    assert len(table) == 6 * 5 + 2 * 4
    assert set(table["set"]) == {"texts", "flagged"}
    json.dumps(result.to_dict())  # JSON-able
    # every metric name matches the declared patterns
    import fnmatch
    assert all(any(fnmatch.fnmatch(k, p) for p in SECTION.metrics) for k in result.metrics)


def test_default_texts_and_max_items(planted_classifier):
    options = dataclasses.replace(FAST, methods=["attention", "rollout"], max_items=3)
    result = SECTION.run(planted_classifier, options, RunContext(progress=False))
    assert result.metrics["attention.aopc"].n == 3
    assert any("built-in" in note for note in result.notes) and any("(max_items)" in note for note in result.notes)


def test_read_texts(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text('id,text\n1,"hello, world"\n2,second one\n', encoding="utf-8")
    assert read_texts(csv) == ["hello, world", "second one"]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,sentence\n1,x\n", encoding="utf-8")
    with pytest.raises(RaikitInputError, match="column 'text' missing"):
        read_texts(bad)
    with pytest.raises(RaikitInputError, match="json"):
        read_texts(tmp_path / "t.json")


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_bad_input(planted_classifier, random_mlm, minilm_tok, tmp_path):
    with pytest.raises(RaikitInputError) as exc:
        explain(planted_classifier, ["fine", "   "], method="shap")
    assert "text 1 is empty" in _one_line(exc)
    with pytest.raises(RaikitInputError) as exc:
        explain(random_mlm, ["a text"], method="lime")
    assert "tiny-mlm" in _one_line(exc) and "classification head" in _one_line(exc)
    with pytest.raises(RaikitInputError) as exc:
        explain(tiny.tiny_classifier(minilm_tok), ["a text"], method="attention")
    assert "classification head" in _one_line(exc)
    with pytest.raises(RaikitInputError) as exc:
        explain(planted_classifier, ["a text"], method="shapley")
    assert "'shapley'" in _one_line(exc) and "shap" in _one_line(exc)
    ctx = RunContext(base_dir=tmp_path, progress=False)
    with pytest.raises(RaikitInputError) as exc:
        SECTION.run(planted_classifier, dataclasses.replace(FAST, methods=["shap", "gradcam"]), ctx)
    assert "gradcam" in _one_line(exc) and "[explain] methods" in _one_line(exc)
    with pytest.raises(RaikitInputError) as exc:
        SECTION.run(planted_classifier, dataclasses.replace(FAST, texts=["ok", ""]), ctx)
    assert "text 1 is empty" in _one_line(exc)
    with pytest.raises(RaikitInputError) as exc:
        SECTION.run(planted_classifier, dataclasses.replace(FAST, texts_file="missing.txt"), ctx)
    assert "missing.txt" in _one_line(exc)
    with pytest.raises(RaikitInputError) as exc:
        SECTION.run(random_mlm, FAST, ctx)
    assert "classification head" in _one_line(exc)
    with pytest.raises(RaikitInputError) as exc:
        SECTION.run(planted_classifier, dataclasses.replace(FAST, top_k=0), ctx)
    assert "top_k" in _one_line(exc)


def test_shap_efficiency_other_tokenizers():
    """Efficiency holds after word merging for byte-level BPE and SentencePiece tokenizers too."""
    corpus = ["good film, great cast!", "bad plot; awful acting...", "3 stars 👍"] * 10
    for tok in (tiny.bpe_tokenizer(corpus), tiny.sentencepiece_tokenizer(corpus)):
        clf = wrap_model(tiny.tiny_classifier(tok, seed=3), tok, name="tiny", device="cpu", progress=False)
        texts = ["good film, great cast!", "awful acting... 3 stars 👍"]
        for e in explain(clf, texts, method="shap", settings=ExplainSettings(shap_max_evals=60)):
            np.testing.assert_allclose(e.base_values + e.attributions.sum(0), e.probabilities, atol=1e-5)
