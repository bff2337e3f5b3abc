"""Active learning on arrays: the engine, the feeds and their bandit, the honest quality
estimate, and simulation. Nothing here knows about videos, the clip library or the store.

- :mod:`~va_widgets.learner.engine`: classifier, scores, feeds, review (modAL behind
  :mod:`~va_widgets.learner.modal_adapter`);
- :mod:`~va_widgets.learner.feeds`: the feeds' sampling distributions and the auto feed's bandit;
- :mod:`~va_widgets.learner.quality`: the honest estimate of AP, precision, recall, prevalence;
- :mod:`~va_widgets.learner.simulate`: replaying sessions against known labels.
"""

from va_widgets.learner.engine import ActiveLearningEngine, default_estimator
from va_widgets.learner.feeds import ARMS, FEEDS, SAMPLED
from va_widgets.learner.quality import Interval, Quality, average_precision
from va_widgets.learner.simulate import learning_curve, simulate

__all__ = [
    "ARMS",
    "FEEDS",
    "SAMPLED",
    "ActiveLearningEngine",
    "Interval",
    "Quality",
    "average_precision",
    "default_estimator",
    "learning_curve",
    "simulate",
]
