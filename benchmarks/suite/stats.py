"""Aggregate statistics of a suite's cells, after Agarwal et al. (2021): IQM, probability of improvement and
performance profiles with 95 % stratified-bootstrap confidence intervals.

The point estimates are rliable's own (``rliable.metrics``). The bootstrap is the same stratified resampling as
``rliable.library.StratifiedBootstrap`` (runs resampled with replacement within each task, percentile intervals),
written here with NumPy because ``rliable.library`` needs ``arch<8``, which cannot be imported beside pandas 3;
vectorized, 20,000 resamples of a task take milliseconds.

This module is the one home of the benchmarks' statistics: the suite report, ``main_job.py``, ``eureka.py`` and
``robot_motif.py`` all call it. EVIDENCE.md's rules live here too: a row with fewer than :data:`HEADLINE_SEEDS`
seeds reports its mean (a 25 %-trimmed mean of 3 values is their mean, so calling it IQM overstates it), and a
comparison is named by :func:`verdict` from the interval of P(method > control).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.stats
from rliable import metrics


#: Seeds a headline row needs before its point estimate is called an IQM (EVIDENCE.md).
HEADLINE_SEEDS = 5


def verdict(ci: Sequence[float] | None) -> str | None:
    """EVIDENCE.md's verb for a comparison, from the 95 % interval of P(method > control): ``ahead`` when the
    interval lies above 0.5, ``behind`` when below, ``level with`` when it contains 0.5; None without an interval.

    Example:
        >>> verdict([0.62, 0.97]), verdict([0.30, 0.70]), verdict([0.0, 0.4])
        ('ahead', 'level with', 'behind')
    """
    if ci is None or ci[0] is None:
        return None
    low, high = float(ci[0]), float(ci[1])
    return "ahead" if low > 0.5 else "behind" if high < 0.5 else "level with"


def mean_ci(scores: Sequence[float], *, reps: int = 20_000, size: float = 0.95,
            seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, runs resampled with replacement.

    Example:
        >>> mean_ci([0.0, 0.0, 1.0, 1.0])[0] < 0.5 < mean_ci([0.0, 0.0, 1.0, 1.0])[1]
        True
    """
    x = np.asarray(scores, dtype=float)
    return _interval(_resample(x, reps, np.random.default_rng(seed)).mean(axis=1), size)


def iqm(scores: Sequence[float]) -> float:
    """Interquartile mean over runs (rliable's ``aggregate_iqm``).

    Example:
        >>> iqm([0.0, 0.5, 0.6, 1.0])
        0.55
    """
    return float(metrics.aggregate_iqm(np.asarray(scores, dtype=float)[:, None]))


def prob_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(a run of X scores above a run of Y), ties counted half (rliable's ``probability_of_improvement``).

    Example:
        >>> prob_improvement([1.0, 1.0], [0.0, 1.0])
        0.75
    """
    return float(metrics.probability_of_improvement(np.asarray(x, float)[:, None], np.asarray(y, float)[:, None]))


def _resample(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    return scores[rng.integers(0, len(scores), size=(reps, len(scores)))]


def _interval(samples: np.ndarray, size: float) -> tuple[float, float]:
    low, high = np.percentile(samples, [50 * (1 - size), 50 * (1 + size)], axis=0)
    return float(low), float(high)


def iqm_ci(scores: Sequence[float], *, reps: int = 20_000, size: float = 0.95,
           seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the IQM, runs resampled with replacement.

    Example:
        >>> [round(v, 3) for v in iqm_ci([0.0, 0.2, 0.9, 1.0, 1.0])]
        [0.067, 1.0]
    """
    x = np.asarray(scores, dtype=float)
    samples = scipy.stats.trim_mean(_resample(x, reps, np.random.default_rng(seed)), 0.25, axis=1)
    return _interval(samples, size)


def prob_improvement_ci(x: Sequence[float], y: Sequence[float], *, reps: int = 20_000, size: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of :func:`prob_improvement`, X and Y resampled independently (rliable's
    ``StratifiedIndependentBootstrap``).

    Example:
        >>> prob_improvement_ci([1.0] * 5, [0.0] * 5)
        (1.0, 1.0)
        >>> low, high = prob_improvement_ci([0.0, 1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0, 0.0])
        >>> low < 0.5 < high
        True
    """
    rng = np.random.default_rng(seed)
    xs, ys = _resample(np.asarray(x, float), reps, rng), _resample(np.asarray(y, float), reps, rng)
    samples = _prob_improvement_rows(xs, ys)
    return _interval(samples, size)


def _prob_improvement_rows(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Row-wise Mann-Whitney U / (n_x n_y): the same number rliable gets from scipy, for many resamples at once."""
    above = (xs[:, :, None] > ys[:, None, :]).mean(axis=(1, 2))
    tied = (xs[:, :, None] == ys[:, None, :]).mean(axis=(1, 2))
    return above + 0.5 * tied


def reward_stats(scores: Sequence[float], controls: dict[str, Sequence[float]], *, reps: int,
                 seed: int = 0) -> dict[str, float | int | list | str | None]:
    """IQM with its interval, mean, the row's point estimate, and probability of improvement over each control
    with its interval and verdict (None where either side has no runs).

    ``point`` / ``point_ci`` is what a table shows: the IQM with ``n_seeds >= HEADLINE_SEEDS``, else the mean and
    its interval (``estimator`` says which). ``prob_improvement_ci`` repeats the interval of P(> none) beside
    ``prob_improvement_vs_none``.

    Example:
        >>> row = reward_stats([1.0, 1.0, 0.0], {"none": [0.0, 0.0, 0.0]}, reps=2000)
        >>> row["estimator"], round(row["point"], 3), row["verdict_vs_none"]  # three seeds cannot tell
        ('mean', 0.667, 'level with')
    """
    x = [float(v) for v in scores]
    out: dict[str, float | int | list | str | None] = {"n_seeds": len(x), "scores": x}
    if x:
        low, high = iqm_ci(x, reps=reps, seed=seed)
        out.update(iqm=iqm(x), ci_low=low, ci_high=high, mean=float(np.mean(x)), median=float(np.median(x)))
        if len(x) >= HEADLINE_SEEDS:
            out.update(estimator="iqm", point=out["iqm"], point_ci=[low, high])
        else:
            out.update(estimator="mean", point=out["mean"], point_ci=list(mean_ci(x, reps=reps, seed=seed)))
    else:
        out.update(iqm=None, ci_low=None, ci_high=None, mean=None, median=None, estimator=None, point=None,
                   point_ci=None)
    for name, y in controls.items():
        key = f"prob_improvement_vs_{name}"
        if x and len(y):
            out[key] = prob_improvement(x, y)
            out[f"{key}_ci"] = list(prob_improvement_ci(x, y, reps=reps, seed=seed))
        else:
            out[key], out[f"{key}_ci"] = None, None
        out[f"verdict_vs_{name}"] = verdict(out[f"{key}_ci"])
    out["prob_improvement_ci"] = out.get("prob_improvement_vs_none_ci")
    return out


def performance_profile(scores_by_task: Sequence[Sequence[float]], taus: np.ndarray, *, reps: int = 2_000,
                        size: float = 0.95, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of runs scoring above each tau, averaged over tasks (rliable's score distribution), and its
    stratified-bootstrap interval (runs resampled within each task): ``(profile, ci)`` with ``ci`` of shape (2, T).

    Example:
        >>> profile, ci = performance_profile([[0.0, 1.0], [1.0, 1.0]], np.array([0.5]))
        >>> profile.tolist()
        [0.75]
    """
    rng = np.random.default_rng(seed)
    point = np.mean([_fraction_above(np.asarray(task, float), taus) for task in scores_by_task], axis=0)
    samples = np.mean([(_resample(np.asarray(task, float), reps, rng)[:, :, None] > taus).mean(axis=1)
                       for task in scores_by_task], axis=0)  # (reps, T)
    low, high = np.percentile(samples, [50 * (1 - size), 50 * (1 + size)], axis=0)
    return point, np.stack([low, high])


def _fraction_above(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of ``scores`` above each of ``taus`` (rliable's ``run_score_deviation``, per threshold)."""
    return (scores[:, None] > taus[None, :]).mean(axis=0)


def curve_band(curves: np.ndarray, *, reps: int = 2_000, size: float = 0.95,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over runs at each point of ``curves`` (runs x points) and its bootstrap interval (runs resampled)."""
    rng = np.random.default_rng(seed)
    point = scipy.stats.trim_mean(curves, 0.25, axis=0)
    picks = rng.integers(0, len(curves), size=(reps, len(curves)))
    samples = scipy.stats.trim_mean(curves[picks], 0.25, axis=1)  # (reps, points)
    low, high = np.percentile(samples, [50 * (1 - size), 50 * (1 + size)], axis=0)
    return point, low, high
