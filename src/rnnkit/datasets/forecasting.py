"""Forecasting data: yearly sunspot numbers."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._files import bundled_text

__all__ = ["Sunspots", "load_sunspots"]


class Sunspots(NamedTuple):
    """Yearly sunspot numbers in three consecutive, non-overlapping pieces."""

    train: np.ndarray  #: (221,) float32, 1700–1920
    test: np.ndarray  #: (67,) float32, 1921–1987
    extra: np.ndarray  #: (21,) float32, 1988–2008
    years_train: np.ndarray  #: (221,) int64
    years_test: np.ndarray  #: (67,) int64
    years_extra: np.ndarray  #: (21,) int64


def load_sunspots() -> Sunspots:
    """Yearly mean sunspot numbers, 1700–2008 (309 values), with the classic split.

    Split (as in the forecasting literature since Tong & Lim, 1980):

    - ``train``: 1700–1920 (221 years),
    - ``test``: 1921–1987 (67 years),
    - ``extra``: 1988–2008 (21 years), the years the data gained later; they are in
      no classic split, so they are returned apart: forecast them as a second,
      later test or append them to ``test``.

    The three pieces are consecutive: ``np.concatenate([train, test, extra])`` is the
    whole series. Values are the yearly sunspot number (version 1 of the series),
    float32, between 0 and 190.2.

    Source: National Geophysical Data Center (NOAA), as shipped in statsmodels
    0.15.0 (``statsmodels/datasets/sunspots/sunspots.csv``). Licence: public domain.
    """
    lines = bundled_text("sunspots.csv.gz").strip().split("\n")
    if lines[0] != "year,sunspots":
        raise ValueError(f"bundled sunspots.csv.gz has an unexpected header {lines[0]!r}")
    table = np.array([l.split(",") for l in lines[1:]], dtype=np.float64)  # (309, 2)
    years = table[:, 0].astype(np.int64)
    values = table[:, 1].astype(np.float32)
    train = years <= 1920
    test = (years >= 1921) & (years <= 1987)
    extra = years >= 1988
    return Sunspots(values[train], values[test], values[extra], years[train], years[test], years[extra])
