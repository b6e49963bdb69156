"""SEAT / WEAT effect size and permutation p-value as an ``evaluate`` module (load with ``evaluate.load(path)``).

The inputs are precomputed embeddings, each tagged with its set; the numbers come from
:func:`raikit.fairness.seat.weat`, the same function raikit's audit uses.
"""
import datasets
import evaluate
import numpy as np

from raikit.fairness.seat import CITATION, weat

_DESCRIPTION = """SEAT/WEAT (Caliskan et al., 2017; May et al., 2019): the effect size of the differential
association of two target sets (targ1, targ2) with two attribute sets (attr1, attr2) in an embedding
space, (mean_x s(x) - mean_y s(y)) / std_{w in X u Y} s(w) with s(w) = mean cos(w, A) - mean cos(w, B),
and the one-sided permutation p-value over equal splits of the targets (exact when there are no more than
n_samples splits, as in the SEAT reference code)."""

_KWARGS_DESCRIPTION = """
Args:
    embeddings (list of list of float): one vector per word or sentence.
    sets (list of str): "targ1", "targ2", "attr1" or "attr2" for each vector.
    n_samples (int): permutation partitions (default 100000).
    n_bootstrap (int): bootstrap resamples of the effect size interval (default 1000).
    seed (int): seed of sampled permutations and the bootstrap.
Returns:
    effect_size, p_value, effect_size_ci95 ([low, high]), p_method.
Examples:
    >>> metric = evaluate.load("path/to/seat.py")
    >>> metric.compute(embeddings=[[1, 0], [0, 1], [1, 0.1], [0.1, 1]], sets=["targ1", "targ2", "attr1", "attr2"])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Seat(evaluate.Metric):
    """WEAT effect size and p-value from precomputed embeddings."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "embeddings": datasets.Sequence(datasets.Value("float64")),
                "sets": datasets.Value("string"),
            }),
            reference_urls=["https://github.com/W4ngatang/sent-bias", "https://github.com/McGill-NLP/bias-bench"],
        )

    def _compute(self, embeddings, sets, n_samples=100_000, n_bootstrap=1000, seed=0):
        vectors = np.asarray(embeddings, dtype=np.float64)
        labels = np.asarray(sets)
        parts = []
        for key in ("targ1", "targ2", "attr1", "attr2"):
            part = vectors[labels == key]
            if not len(part):
                raise ValueError(f"no embeddings for set {key!r}")
            parts.append(part)
        result = weat(*parts, n_samples=n_samples, n_bootstrap=n_bootstrap, seed=seed)
        return {"effect_size": result.effect_size, "p_value": result.p_value,
                "effect_size_ci95": None if result.effect_ci is None else list(result.effect_ci),
                "p_method": result.p_method}
