"""Known list prices (USD per million input / output tokens) for cost estimates and --max-cost."""

from __future__ import annotations

from dataclasses import dataclass

from .usage import Usage

# Checked against the providers' price pages when written; unknown models get no estimate.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}


def price_of(model: str, paid: bool = True) -> tuple[float, float] | None:
    """(input, output) price per million tokens; a model run on this machine costs nothing."""
    if not paid:
        return (0.0, 0.0)
    return PRICES.get(model)


# The Batch API bills half the list price.
BATCH_DISCOUNT = 0.5


def batch_price(price: tuple[float, float] | None) -> tuple[float, float] | None:
    """The per-million prices of a model through the Batch API."""
    return None if price is None else (price[0] * BATCH_DISCOUNT, price[1] * BATCH_DISCOUNT)


def cost(usage: Usage, price: tuple[float, float]) -> float:
    """Estimated USD for this much usage."""
    return usage.prompt_tokens / 1e6 * price[0] + usage.completion_tokens / 1e6 * price[1]


@dataclass(frozen=True)
class Budget:
    """--max-tokens-total and --max-cost: the reason to stop once spent, else None."""

    max_tokens_total: int | None = None
    max_cost: float | None = None
    price: tuple[float, float] | None = None

    def reached(self, usage: Usage) -> str | None:
        if self.max_tokens_total is not None and usage.total_tokens >= self.max_tokens_total:
            return f"token budget of {self.max_tokens_total} reached"
        if self.max_cost is not None and self.price is not None and cost(usage, self.price) >= self.max_cost:
            return f"cost budget of ${self.max_cost} reached"
        return None
