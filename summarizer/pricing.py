"""Known list prices (USD per million input / output tokens) for cost estimates and --max-cost."""

from __future__ import annotations

from .backends.base import Usage

# Checked against the providers' price pages when written; unknown models get no estimate.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}


def price_of(model: str, backend: str) -> tuple[float, float] | None:
    """(input, output) price per million tokens; local models cost nothing."""
    if backend == "local":
        return (0.0, 0.0)
    return PRICES.get(model)


def cost(usage: Usage, price: tuple[float, float]) -> float:
    """Estimated USD for this much usage."""
    return usage.prompt_tokens / 1e6 * price[0] + usage.completion_tokens / 1e6 * price[1]
