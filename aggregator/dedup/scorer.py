"""The fitted pair scorer: a logistic model over the evidence of a pair, its coefficients
shipped as data (`scorer.json`, written by `benchmarks/fit_dedup.py` from the dev split of the
labelled sets). Vetoes are not part of it: they stay hard rules in `compare`."""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

FEATURES: tuple[str, ...] = (
    "title", "text", "terms", "names", "countries", "places", "places_differ", "figures",
    "counts_agree", "counts_differ", "amounts_agree", "kinds", "events", "event_day",
    "dates_differ", "operation", "days_apart", "undated", "same_agency", "name_each_other",
    "advisory_pair", "advisory_same_agency",
)
"""The evidence of a pair, in the order of `Evidence.values` and of the coefficients."""


@dataclass(frozen=True, slots=True)
class Model:
    """Intercept and one coefficient per feature; the thresholds fitted with them."""

    intercept: float
    coefficients: tuple[float, ...]
    merge_threshold: float
    agree_threshold: float


_installed: list[Model] = []


def install(fitted: Model | None) -> None:
    """Score with `fitted` instead of the shipped model (None: back to the shipped one).
    For the fitting and evaluation scripts only."""
    _installed.clear()
    if fitted is not None:
        _installed.append(fitted)


def model() -> Model:
    """The model in use: the shipped one unless a script installed another."""
    return _installed[0] if _installed else shipped()


@cache
def shipped() -> Model:
    """The shipped model (read once)."""
    data = json.loads(resources.files("aggregator.dedup").joinpath("scorer.json")
                      .read_text(encoding="utf-8"))
    return from_data(data)


def from_data(data: dict[str, object]) -> Model:
    """A model from its JSON form; its features must be this code's features."""
    coefficients = data["coefficients"]
    assert isinstance(coefficients, dict)
    missing = set(FEATURES) - coefficients.keys()
    if missing:
        raise ValueError(f"scorer.json lacks coefficients for {sorted(missing)}")
    return Model(
        intercept=float(data["intercept"]),  # type: ignore[arg-type]
        coefficients=tuple(float(coefficients[name]) for name in FEATURES),
        merge_threshold=float(data["merge_threshold"]),  # type: ignore[arg-type]
        agree_threshold=float(data["agree_threshold"]),  # type: ignore[arg-type]
    )


def probability(values: Sequence[float], fitted: Model | None = None) -> float:
    """The probability that a pair with this evidence reports one story."""
    m = fitted or model()
    if len(values) != len(m.coefficients):
        raise ValueError(f"{len(values)} evidence values for {len(m.coefficients)} coefficients")
    logit = m.intercept + sum(map(operator.mul, m.coefficients, values))
    if logit < -30:
        return 0.0
    return 1.0 / (1.0 + math.exp(-logit))


def contributions(values: Sequence[float]) -> list[tuple[str, float]]:
    """Each feature's share of the log-odds (coefficient × value), largest first."""
    m = model()
    parts = [(name, c * v) for name, c, v in zip(FEATURES, m.coefficients, values, strict=True)
             if v]
    return sorted(parts, key=lambda p: -abs(p[1]))
