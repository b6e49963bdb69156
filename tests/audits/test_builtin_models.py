"""The built-in offline models through the whole runner (slower: prepares the models on first use)."""
from __future__ import annotations

import json

import pytest

from raikit.audits.builtin import builtin_status
from raikit.audits.runner import run_audit

pytestmark = pytest.mark.integration


def test_builtin_models_through_the_runner(tmp_path, shared_data):
    cfg = tmp_path / "raikit_small.toml"
    cfg.write_text(f'''
[run]
seed = 1
device = "cpu"
data_dir = "{shared_data}"

[models.smollm]
id = "builtin:smollm2-135m"

[models.minilm]
id = "builtin:minilm-l6"

[models.sentiment]
id = "builtin:minilm-sentiment"

[fairness.crows_pairs]
model = "smollm"
max_items = 12

[fairness.seat]
model = "minilm"
tests = ["weat6"]

[fairness.counterfactual]
model = "sentiment"
max_items = 40

[explain]
model = "sentiment"
methods = ["shap", "attention"]
max_items = 2
shap_max_evals = 64

[gates]
"fairness.crows_pairs.metric_score" = {{ max = 100.0 }}
"fairness.seat.weat6.effect_size" = {{ max = 2.0 }}
''')
    outcome = run_audit(cfg, out_dir=tmp_path / "out", progress=False)
    res = json.loads((outcome.out_dir / "results.json").read_text())
    assert outcome.exit_code == 0, res["gates"]
    kinds = {key: m["kind"] for key, m in res["models"].items()}
    assert kinds == {"smollm": "causal_lm", "minilm": "encoder", "sentiment": "classifier"}
    accuracy = res["models"]["sentiment"]["metadata"]["held_out_accuracy"]
    assert accuracy > 0.75, accuracy
    assert res["metrics"]["fairness.crows_pairs.metric_score"]["n"] == 12
    assert "fairness.seat.weat6.effect_size" in res["metrics"]
    assert "explain.shap.comprehensiveness" in res["metrics"]
    assert (outcome.out_dir / "report.html").stat().st_size > 1000
    assert all(row["ready"] for row in builtin_status())


def test_smollm_greedy_completion():
    from raikit.audits import load_model

    lm = load_model("builtin:smollm2-135m", device="cpu", progress=False)
    assert lm.generate(["The capital of France is"], max_new_tokens=3)[0][0].strip().startswith("Paris")


def test_smollm_cache_claims_no_gguf_quantization():
    """The cache holds dequantised float32 weights: a GGUF ``quantization_config`` left in its config made
    transformers attach its GGUF quantizer on every load (and warn about packed kernels in bfloat16)."""
    from raikit.audits.builtin import prepare_builtin

    folder, _ = prepare_builtin("builtin:smollm2-135m", progress=False)
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())


def test_old_cache_config_is_repaired(tmp_path):
    from raikit.audits.builtin import _drop_gguf_quantization

    config = {"model_type": "llama", "vocab_size": 49152,
              "quantization_config": {"quant_method": "gguf", "gguf_file": "x.gguf", "dequantize": False}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    _drop_gguf_quantization(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == {"model_type": "llama", "vocab_size": 49152}
    other = {"model_type": "llama", "quantization_config": {"quant_method": "bitsandbytes"}}
    (tmp_path / "config.json").write_text(json.dumps(other))
    _drop_gguf_quantization(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == other
