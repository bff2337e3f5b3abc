"""The one place that imports modAL: its ``ActiveLearner`` owns the training set and fits.

modAL is unmaintained (its ``teach`` breaks on scikit-learn >= 1.8, hence the pin); keeping it
behind this adapter lets another library replace it without touching the engine.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.base import clone


class ModalLearner:
    """modAL ``ActiveLearner`` around a clone of ``estimator``; numpy arrays in, nothing out."""

    def __init__(self, estimator: Any) -> None:
        from modAL.models import ActiveLearner
        from modAL.uncertainty import uncertainty_sampling

        self._learner = ActiveLearner(
            estimator=clone(estimator), query_strategy=uncertainty_sampling
        )

    @property
    def estimator(self) -> Any:
        """The fitted scikit-learn estimator (modAL refits it in place)."""
        return self._learner.estimator

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        """Replace the training set with (x, y) and refit."""
        with _quiet():
            self._learner.fit(x, y)

    def teach(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add (x, y) to the training set and refit."""
        with _quiet():
            self._learner.teach(x, y)


@contextmanager
def _quiet() -> Iterator[None]:
    # modAL 0.4.2.1 passes check_X_y(force_all_finite=...), deprecated in scikit-learn 1.6 and
    # removed in 1.8 (hence the <1.8 pin): silence the warning, not errors.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*force_all_finite.*", category=FutureWarning)
        yield
