"""StereoSet SS / LMS / ICAT as an ``evaluate`` module (load with ``evaluate.load(path)``).

The inputs are precomputed option scores; the numbers come from
:func:`raikit.fairness.stereoset.stereoset_score`, the same function raikit's audit uses.
"""
import datasets
import evaluate

from raikit.fairness.stereoset import STEREOSET_CITATION, stereoset_score

_DESCRIPTION = """StereoSet (Nadeem et al., 2021), the official evaluation: per target term, the stereotype
score SS (percent of items where the stereotype option beats the anti-stereotype, 50 ideal) and the
language-model score LMS (percent of meaningful options beating the unrelated one, 100 ideal), averaged
over targets; ICAT = LMS * min(SS, 100 - SS) / 50 (100 ideal)."""

_KWARGS_DESCRIPTION = """
Args:
    score_stereotype (list of float): score of each item's stereotype option (higher = more likely).
    score_anti_stereotype (list of float): score of the anti-stereotype option.
    score_unrelated (list of float): score of the unrelated option.
    targets (list of str): the target term of each item.
    bias_types (list of str): the bias type (domain) of each item.
Returns:
    ss, lms, icat, count, by_bias_type.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class StereoSet(evaluate.Metric):
    """StereoSet scores from precomputed option scores."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=STEREOSET_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "score_stereotype": datasets.Value("float64"),
                "score_anti_stereotype": datasets.Value("float64"),
                "score_unrelated": datasets.Value("float64"),
                "targets": datasets.Value("string"),
                "bias_types": datasets.Value("string"),
            }),
            reference_urls=["https://github.com/moinnadeem/StereoSet"],
        )

    def _compute(self, score_stereotype, score_anti_stereotype, score_unrelated, targets, bias_types):
        return stereoset_score(score_stereotype, score_anti_stereotype, score_unrelated, targets, bias_types)
