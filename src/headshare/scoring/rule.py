"""A prediction's decision rule: the comparison a measurement must pass, with the file's defaults filled in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """An entry's decision rule with the file's defaults filled in (see the schema for each field)."""

    op: str
    value: float | tuple[float, ...]
    tolerance: float
    margin: float
    parity_ratio: float
    seed_majority: float
    unlearned_excess: float
    resolution_factor: float
    min_accuracy: float

    def holds(self, observed: float) -> bool:
        """Whether ``observed`` satisfies ``op value``; the tolerance widens '==', '<=', '>=' and makes
        '!=', '<', '>' demand a clear margin, so it always sides with the measurement's imprecision."""
        value, tol = float(self.value), self.tolerance  # type: ignore[arg-type]
        return {
            "==": abs(observed - value) <= tol,
            "!=": abs(observed - value) > tol,
            "<=": observed <= value + tol,
            "<": observed < value - tol,
            ">=": observed >= value - tol,
            ">": observed > value + tol,
        }[self.op]

    def describe(self) -> str:
        if isinstance(self.value, tuple):
            return f"{', '.join(f'{v:g}' for v in self.value)} ± {self.tolerance:g}"
        text = f"{self.op} {self.value:g}"
        return text + (f" (tolerance {self.tolerance:g})" if self.tolerance else "")


def decision_rule(document: dict, entry: dict) -> Rule:
    """The entry's rule merged over the file's defaults (a validated document has them all)."""
    merged = {**document["defaults"], **entry["rule"]}
    value = merged["value"]
    merged["value"] = tuple(float(v) for v in value) if isinstance(value, list) else float(value)
    return Rule(**merged)
