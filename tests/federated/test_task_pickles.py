"""The client task Ray ships to every simulated client pickles even after another section asked for attentions."""
from __future__ import annotations

import tiny
from raikit.audits.models import wrap_model
from raikit.federated._section import FederatedOptions, make_task


def test_task_pickles_after_attention_hooks_were_installed():
    import cloudpickle

    tok = tiny.word_tokenizer(["good", "bad", "film"])
    adapter = wrap_model(tiny.tiny_classifier(tok), tok, kind="classifier", device="cpu", progress=False)
    adapter.attention_maps(["good film", "bad film"])  # transformers installs output-capturing hooks here
    task = make_task(adapter.model, tok, ("negative", "positive"), [], FederatedOptions(), seed=0)
    restored = cloudpickle.loads(cloudpickle.dumps(task))
    assert type(restored.model) is type(adapter.model)
    assert all((a == b).all() for a, b in zip(restored.model.state_dict().values(), adapter.model.state_dict().values()))
