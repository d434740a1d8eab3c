"""The promotion gate: requirements such as ``accuracy >= baseline - 0.01`` checked on a comparison.

Grammar (a small recursive-descent parser; nothing is evaluated as Python)::

    requirement := METRIC COMPARATOR expr
    expr        := term (("+" | "-") term)*
    term        := factor ("*" factor)*
    factor      := NUMBER | "baseline" | "(" expr ")" | "-" factor

``baseline`` is the baseline version's value of the same metric. Metrics (the candidate's): accuracy, f1,
roc_auc, mae, rmse (on labelled rows), p50_ms, p99_ms, error_rate, agreement (share of shadowed rows with the
baseline's label), drift_share (share of drifted input features), labelled, requests.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from berth.errors import UsageError

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "!=": operator.ne}
LABELLED = ("accuracy", "f1", "roc_auc", "mae", "rmse")
METRICS = (*LABELLED, "p50_ms", "p99_ms", "error_rate", "agreement", "drift_share", "labelled", "requests")
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)|(>=|<=|==|!=|[<>+\-*()])|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Requirement:
    text: str
    metric: str
    comparator: str
    expression: Any  # a tree of tuples: ("num", x) | ("baseline",) | (op, left, right) | ("neg", operand)

    def threshold(self, baseline: float | None) -> float | None:
        return evaluate(self.expression, baseline)


def tokenize(text: str) -> list[str]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise UsageError(f"cannot read the requirement {text!r} at {text[position:].strip()!r}")
        tokens.append(next(group for group in match.groups() if group is not None))
        position = match.end()
    return tokens


def parse(text: str) -> Requirement:
    """A requirement from text; a UsageError names what is wrong."""
    if len(text) > 200:
        raise UsageError("a requirement is at most 200 characters")
    tokens = tokenize(text)
    if len(tokens) < 3 or tokens[0] not in METRICS or tokens[1] not in COMPARATORS:
        raise UsageError(f"a requirement is METRIC COMPARATOR EXPRESSION, e.g. 'accuracy >= baseline - 0.01', "
                         f"not {text!r}; metrics: {', '.join(METRICS)}; comparators: {', '.join(COMPARATORS)}")
    position = 2

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise UsageError(f"the requirement {text!r} ends too soon")
        position += 1
        return tokens[position - 1]

    def expr() -> Any:
        node = term()
        while peek() in ("+", "-"):
            node = (take(), node, term())
        return node

    def term() -> Any:
        node = factor()
        while peek() == "*":
            node = (take(), node, factor())
        return node

    def factor() -> Any:
        token = take()
        if token == "(":
            node = expr()
            if take() != ")":
                raise UsageError(f"unbalanced parentheses in {text!r}")
            return node
        if token == "-":
            return ("neg", factor())
        if token == "baseline":
            return ("baseline",)
        try:
            return ("num", float(token))
        except ValueError:
            raise UsageError(f"unexpected {token!r} in {text!r}: use numbers, baseline, + - * and parentheses") \
                from None

    tree = expr()
    if position != len(tokens):
        raise UsageError(f"unexpected {tokens[position]!r} in {text!r}")
    return Requirement(text.strip(), tokens[0], tokens[1], tree)


def evaluate(node: Any, baseline: float | None) -> float | None:
    kind = node[0]
    if kind == "num":
        return float(node[1])
    if kind == "baseline":
        return baseline
    if kind == "neg":
        value = evaluate(node[1], baseline)
        return None if value is None else -value
    left, right = evaluate(node[1], baseline), evaluate(node[2], baseline)
    if left is None or right is None:
        return None
    return {"+": operator.add, "-": operator.sub, "*": operator.mul}[kind](left, right)


def value_of(section: dict[str, Any], metric: str, agreement: dict[str, Any] | None = None) -> float | None:
    """A metric of one version's section of a comparison."""
    if metric in LABELLED:
        return section["metrics"].get(metric, {}).get("value")
    if metric in ("p50_ms", "p99_ms"):
        return section["latency_ms"][metric.removesuffix("_ms")]
    if metric == "error_rate":
        return section["error_rate"]
    if metric == "drift_share":
        return (section.get("drift") or {}).get("share")
    if metric == "labelled":
        return float(section["labelled"])
    if metric == "requests":
        return float(section["requests"] + section["shadow_requests"])
    if metric == "agreement":
        return (agreement or {}).get("rate")
    raise UsageError(f"unknown metric {metric!r}")


def judge(requirements: list[Requirement], comparison: dict[str, Any], min_labels: int) -> dict[str, Any]:
    """Each requirement's evidence and the verdict: ``passed``, ``refused`` or ``insufficient`` (too few labels
    for the labelled metrics, or a metric not measured)."""
    base = comparison["versions"][comparison["baseline"]]
    cand = comparison["versions"][comparison["candidate"]]
    results, insufficient = [], []
    for labelled_side, section in (("baseline", base), ("candidate", cand)):
        if section["labelled"] < min_labels:
            insufficient.append(f"{labelled_side} has {section['labelled']:,} labelled rows, fewer than "
                                f"--min-labels {min_labels:,}")
    for requirement in requirements:
        value = value_of(cand, requirement.metric, comparison["agreement"])
        baseline = value_of(base, requirement.metric, comparison["agreement"]) \
            if requirement.metric != "agreement" else 1.0
        threshold = requirement.threshold(baseline)
        measured = value is not None and threshold is not None and math.isfinite(value) and math.isfinite(threshold)
        holds = bool(measured and COMPARATORS[requirement.comparator](value, threshold))  # type: ignore[arg-type]
        if not measured:
            insufficient.append(f"{requirement.text}: not measured ({requirement.metric} of the candidate "
                                f"{'or the baseline ' if threshold is None else ''}is unknown)")
        results.append({"requirement": requirement.text, "metric": requirement.metric, "candidate": value,
                        "baseline": baseline, "threshold": threshold, "holds": holds})
    verdict = "insufficient" if insufficient else "passed" if all(r["holds"] for r in results) else "refused"
    return {"verdict": verdict, "requirements": results, "insufficient": insufficient, "min_labels": min_labels,
            "baseline": comparison["baseline"], "candidate": comparison["candidate"],
            "labelled": {"baseline": base["labelled"], "candidate": cand["labelled"]}, "test": comparison["test"]}
