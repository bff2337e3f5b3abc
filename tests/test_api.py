"""The public surface of ``va_widgets``: what users import and catch."""

from __future__ import annotations

import pytest

import va_widgets as va
from va_widgets import errors, store


def test_every_public_name_resolves():
    for name in va.__all__:
        assert getattr(va, name) is not None, name


@pytest.mark.parametrize(
    "name",
    ["StoreError", "TaskMismatch", "CacheError", "EmbedderMismatch", "VideoError", "WorkerCrashed"],
)
def test_errors_live_in_errors_and_are_exported(name):
    error = getattr(errors, name)
    assert getattr(va, name) is error and issubclass(error, va.VaWidgetsError)


def test_store_errors_still_importable_from_store():
    assert store.StoreError is va.StoreError and store.TaskMismatch is va.TaskMismatch
    assert issubclass(va.TaskMismatch, va.StoreError)


def test_label_store_and_quality_exported():
    from va_widgets.learner import Quality

    assert va.LabelStore is store.LabelStore and va.Quality is Quality
