"""Estimate the USD cost of tokens for runs that ended without a ``result`` line (pure).

Prices per million tokens as the CLI 2.1.197 applied them (notes/claude-cli.md §1.3); unknown
model names are priced like opus, as the CLI does. Cache reads cost 0.1x input and cache
writes 1.25x input.
"""

from __future__ import annotations

from collections.abc import Iterable

from cca_core.tokens.usage import Tokens

PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4-8": (5.0, 25.0),
    "claude-sonnet-5": (3.0, 15.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-fable-5": (10.0, 50.0),
}
DEFAULT_PRICE = PRICES["claude-opus-4-8"]


def price_of(model: str | None) -> tuple[float, float]:
    if not model:
        return DEFAULT_PRICE
    for name, price in PRICES.items():
        if model.startswith(name):
            return price
    return DEFAULT_PRICE


def estimate_cost(tokens: Tokens, models: Iterable[str]) -> float:
    """Price every token at the dearest model the run used."""
    input_price, output_price = max((price_of(model) for model in models), default=DEFAULT_PRICE)
    per_input = input_price / 1_000_000
    return round(
        tokens.input_tokens * per_input
        + tokens.cache_read_input_tokens * per_input * 0.1
        + tokens.cache_creation_input_tokens * per_input * 1.25
        + tokens.output_tokens * output_price / 1_000_000,
        6,
    )
