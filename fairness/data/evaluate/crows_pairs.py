"""CrowS-Pairs metric score as an ``evaluate`` module (load with ``evaluate.load(path)``).

The inputs are precomputed sentence scores; the numbers come from
:func:`raikit.fairness.crows_pairs.crows_pairs_score`, the same function raikit's audit uses.
"""
import datasets
import evaluate

from raikit.fairness.crows_pairs import CROWS_PAIRS_CITATION, crows_pairs_score

_DESCRIPTION = """CrowS-Pairs (Nangia et al., 2020): the percentage of sentence pairs where a language model
scores the more stereotyping sentence (sent_more) higher than the less stereotyping one (sent_less).
Scores are rounded to 3 decimals as in the reference metric.py; ties are neutral. 50 is unbiased."""

_KWARGS_DESCRIPTION = """
Args:
    score_more (list of float): model score (pseudo-)log-likelihood of each pair's sent_more.
    score_less (list of float): model score of each pair's sent_less.
    directions (list of str): "stereo" or "antistereo" (the stereo_antistereo column).
    bias_types (list of str): the bias_type column.
Returns:
    metric_score, stereotype_score, antistereotype_score (percent), neutral, n_pairs, by_bias_type.
Examples:
    >>> metric = evaluate.load("path/to/crows_pairs.py")
    >>> metric.compute(score_more=[-3.0], score_less=[-4.0], directions=["stereo"], bias_types=["gender"])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CrowsPairs(evaluate.Metric):
    """CrowS-Pairs scores from precomputed sentence scores."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CROWS_PAIRS_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "score_more": datasets.Value("float64"),
                "score_less": datasets.Value("float64"),
                "directions": datasets.Value("string"),
                "bias_types": datasets.Value("string"),
            }),
            reference_urls=["https://github.com/nyu-mll/crows-pairs"],
        )

    def _compute(self, score_more, score_less, directions, bias_types):
        return crows_pairs_score(score_more, score_less, directions, bias_types)
