"""raikit.explain: word-level SHAP, LIME and attention explanations with faithfulness scores.

>>> from raikit.audits import load_model                          # doctest: +SKIP
>>> from raikit.explain import explain, faithfulness
>>> clf = load_model("builtin:minilm-sentiment")                  # doctest: +SKIP
>>> [e] = explain(clf, ["I love this film"], method="shap")       # doctest: +SKIP
>>> e.words, e.scores                                             # doctest: +SKIP
"""
from raikit.audits.sections import section_registry
from raikit.audits.stats import bootstrap_ci
from raikit.explain._attention import explain_attention, explain_random, explain_rollout, pooled_position, rollout
from raikit.explain._base import EXPLAINERS, Explainer, Explanation, ExplainSettings, explain
from raikit.explain._faithfulness import (
    AOPC_BINS, DELETION_BINS, ERASER_BINS, Faithfulness, agreement, distinct_ks, faithfulness,
    remove_words, top_k_for,
)
from raikit.explain._lime import explain_lime
from raikit.explain._section import DEFAULT_TEXTS, SECTION, ExplainOptions, read_texts, run_explain
from raikit.explain._shap import TokenShap, explain_shap, shap_token_values
from raikit.explain._words import merge_to_words, token_word_matrix, word_spans

#: The ``[explain]`` table's one section, as the runner reads it (``raikit.audits.sections.SECTION_MODULES``).
SECTIONS = section_registry("explain section", SECTION)

__all__ = [
    "SECTIONS", "Explanation", "ExplainSettings", "Explainer", "EXPLAINERS", "explain",
    "explain_shap", "shap_token_values", "TokenShap", "explain_lime", "explain_attention", "explain_rollout",
    "explain_random", "rollout", "pooled_position",
    "word_spans", "token_word_matrix", "merge_to_words",
    "Faithfulness", "faithfulness", "agreement", "bootstrap_ci", "remove_words", "top_k_for", "ERASER_BINS",
    "AOPC_BINS", "DELETION_BINS", "distinct_ks",
    "ExplainOptions", "SECTION", "run_explain", "read_texts", "DEFAULT_TEXTS",
]
