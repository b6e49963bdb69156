"""AUL / AULA bias score as an ``evaluate`` module (load with ``evaluate.load(path)``).

The inputs are precomputed AUL (or AULA) sentence scores; the numbers come from
:func:`raikit.fairness.aul.aul_bias_score`, the same function raikit's audit uses.
"""
import datasets
import evaluate

from raikit.fairness.aul import AUL_CITATION, aul_bias_score

_DESCRIPTION = """AUL / AULA (Kaneko & Bollegala, 2022): the percentage of sentence pairs where a masked
language model gives the stereotypical sentence the higher all-unmasked likelihood (AUL) or its
attention-weighted version (AULA). 50 is unbiased."""

_KWARGS_DESCRIPTION = """
Args:
    score_stereotype (list of float): AUL or AULA of each pair's stereotypical sentence.
    score_anti_stereotype (list of float): the same for the anti-stereotypical sentence.
    bias_types (list of str): the bias type of each pair.
Returns:
    bias_score, n_pairs, by_bias_type.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Aul(evaluate.Metric):
    """AUL / AULA bias score from precomputed sentence scores."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=AUL_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "score_stereotype": datasets.Value("float64"),
                "score_anti_stereotype": datasets.Value("float64"),
                "bias_types": datasets.Value("string"),
            }),
            reference_urls=["https://github.com/kanekomasahiro/evaluate_bias_in_mlm"],
        )

    def _compute(self, score_stereotype, score_anti_stereotype, bias_types):
        return aul_bias_score(score_stereotype, score_anti_stereotype, bias_types)
