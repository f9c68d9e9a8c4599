from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow_engine.core.expressions import BUDGET, MAX_INT_BITS, Budget, compile_expression
from workflow_engine.errors import ExpressionError

SCOPE: dict[str, Any] = {
    "input": {"project_id": "p1", "amount": 120, "tags": ["a", "b"], "nested": {"x": 1}},
    "steps": {"review": {"score": 85, "notes": "ok"}, "fetch": {"items": [1, 2, 3]}, "failed": None},
    "metadata": {"region": "EU"},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("steps.review.score >= 80", True),
        ("steps.review.score < 80", False),
        ("steps['review']['score'] == 85", True),
        ("input.amount > 100 and metadata.region == 'EU'", True),
        ("not input.amount > 100 or False", False),
        ("'a' in input.tags", True),
        ("'z' not in input.tags", True),
        ("len(steps.fetch.items) == 3", True),
        ("steps.fetch.items[-1]", 3),
        ("input.amount * 2 + 1", 241),
        ("input.amount / 4", 30.0),
        ("input.amount % 7", 1),
        ("-input.nested.x", -1),
        ("lower(metadata.region)", "eu"),
        ("get(steps.review, 'missing', 7)", 7),
        ("get(steps.failed, 'score', 0) > 50", False),
        ("'yes' if steps.review.score > 90 else 'no'", "no"),
        ("1 < input.nested.x + 1 < 3", True),
        ("steps.failed is None", True),
        ("{'a': 1}['a']", 1),
        ("input.project_id + '-x'", "p1-x"),
        ("max(1, input.nested.x, 3)", 3),
    ],
)
def test_expressions_evaluate_over_plain_data(source: str, expected: Any) -> None:
    assert compile_expression(source).evaluate(SCOPE) == expected


def test_step_references_are_collected_for_loading_outputs() -> None:
    expression = compile_expression("steps.review.score > 1 and steps['fetch'].items")
    assert expression.step_refs == {"review", "fetch"}
    assert not expression.dynamic_step_refs
    assert compile_expression("steps[input.project_id]").dynamic_step_refs


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("__import__('os').system('true')", "call of '__import__' is not allowed"),
        ("open('/etc/passwd')", "call of 'open' is not allowed"),
        ("input.__class__", "attribute '__class__' is not allowed"),
        ("input._private", "attribute '_private' is not allowed"),
        ("steps.review.score.__class__.__mro__", "attribute '__mro__' is not allowed"),
        ("lower.__globals__", "attribute '__globals__' is not allowed"),
        ("input.items()", "call of 'input.items' is not allowed"),
        ("(lambda: 1)()", "is not allowed"),
        ("[x for x in input.tags]", "ListComp is not allowed"),
        ("f'{input}'", "JoinedStr is not allowed"),
        ("2 ** 100000", "Pow is not allowed"),
        ("os", "unknown name 'os'"),
        ("x := 1", "syntax error"),
        ("steps.review.score >=", "syntax error"),
        ("input.tags[0:1]", "slices are not allowed"),
        ("len(*input.tags)", "starred arguments are not allowed"),
        ("max(input.tags, key=len)", "keyword arguments are not allowed"),
        ("b'bytes'", "constant of type bytes"),
        ("", "empty"),
        ("-" * 200 + "1", "nested too deeply"),
    ],
)
def test_unsafe_or_malformed_expressions_are_refused_before_anything_runs(
    source: str, complaint: str
) -> None:
    with pytest.raises(ExpressionError, match=complaint.replace("(", r"\(").replace("[", r"\[")):
        compile_expression(source)


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("steps.review.missing > 1", "steps.review has no key 'missing'"),
        ("steps.failed.score > 1", "cannot look up 'score' in steps.failed \\(null\\)"),
        ("input.amount > 'x'", "cannot compare int with str"),
        ("input.amount / 0", "division by zero"),
        ("input.project_id * 3", "cannot apply"),
        ("input.tags[5]", "out of range"),
        ("input['__class__']", "key '__class__' is not allowed"),
        ("int('x')", "int\\(\\) failed"),
    ],
)
def test_evaluation_errors_are_reported_as_expression_errors(source: str, complaint: str) -> None:
    expression = compile_expression(source)
    with pytest.raises(ExpressionError, match=complaint):
        expression.evaluate(SCOPE)


def test_no_python_attribute_is_ever_read_from_objects_in_scope() -> None:
    class Secretive:
        secret = "leaked"

    expression = compile_expression("input.obj.secret")
    with pytest.raises(ExpressionError, match="cannot look up"):
        expression.evaluate({"input": {"obj": Secretive()}})


def test_expressions_that_read_no_data_are_detected() -> None:
    assert not compile_expression("1 > 2").reads_data
    assert compile_expression("input.x > 2").reads_data
    assert compile_expression("len(steps.a.items) > 0").reads_data


@pytest.mark.parametrize(
    ("source", "scope", "says"),
    [
        ("{[1]: 2}", {}, "a list cannot be a dict key"),
        ("{input.l: 1} == {}", {"input": {"l": [1]}}, "a list cannot be a dict key"),
        ("input[input.l] == 1", {"input": {"l": [1]}}, "cannot look up a list in input"),
        ("input[input.d] == 1", {"input": {"d": {"a": 1}}}, "cannot look up a dict in input"),
        ("get(input, input.l) == 1", {"input": {"l": [1]}}, "get() failed"),
        ("[1] in {'a': 1}", {}, "cannot compare"),
        ("min([])", {}, "min() failed"),
        ("int('9' * 2)", {}, "cannot apply"),
    ],
)
def test_a_type_error_in_an_expression_is_an_expression_error(
    source: str, scope: dict[str, object], says: str
) -> None:
    with pytest.raises(ExpressionError, match=re.escape(says)):
        compile_expression(source).evaluate(scope)


def test_an_expression_over_large_data_stops_at_its_budget() -> None:
    big = {"input": {"x": list(range(300_000))}}
    expression = compile_expression("len(str(input.x)) + len(str(input.x)) > 0")
    with pytest.raises(ExpressionError, match="evaluation budget"):
        expression.evaluate(big)
    assert compile_expression("len(str(input.x)) > 0").evaluate({"input": {"x": list(range(1000))}})


def test_arithmetic_on_large_integers_costs_their_size() -> None:
    addition = compile_expression("input.n + input.n")
    small, large = Budget(), Budget()
    addition.evaluate({"input": {"n": 9}}, small)
    addition.evaluate({"input": {"n": 2**4000}}, large)
    # each 4,000-bit operand costs its 63 machine words
    assert (BUDGET - large.left) - (BUDGET - small.left) == 2 * 62


def test_integers_are_bounded_so_no_product_of_them_is_costly() -> None:
    # each product adds the sizes: 40 factors of 1,000 bits would make a 40,000-bit number
    product = compile_expression(" * ".join(["input.n"] * 40))
    with pytest.raises(ExpressionError, match=f"at most {MAX_INT_BITS} bits"):
        product.evaluate({"input": {"n": 2**1000}})
    largest = 2**MAX_INT_BITS - 1
    assert compile_expression("input.n - input.n").evaluate({"input": {"n": largest}}) == 0


def test_the_expressions_of_one_decision_share_one_budget() -> None:
    scope = {"input": {"x": list(range(100_000))}}
    condition = compile_expression("len(str(input.x)) > 0")
    for _ in range(20):
        assert condition.evaluate(scope)  # each on a budget of its own
    shared = Budget()
    with pytest.raises(ExpressionError, match="evaluation budget"):
        for _ in range(20):
            condition.evaluate(scope, shared)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=20,
    ),
    st.sampled_from(
        [
            "input.v == input.v",
            "input[input.v]",
            "{input.v: 1}",
            "input.v in input.v",
            "len(input.v) + 1",
            "str(input.v) < input.v",
            "-input.v",
            "input.v + input.v",
            "min(input.v)",
            "get(input.v, input.v)",
            "input.v[0]",
            "round(input.v)",
        ]
    ),
)
def test_no_value_makes_an_expression_raise_anything_but_an_expression_error(
    value: object, source: str
) -> None:
    with contextlib.suppress(ExpressionError):
        compile_expression(source).evaluate({"input": {"v": value}})


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("round(1, -3000000)", "round() takes at most"),  # 10**3000000 computed holding the GIL
        ("round(input.x, 2.5)", "round() takes at most"),
        ("int(input.digits)", "at most 4096 bits"),
    ],
)
def test_functions_cannot_make_integers_past_the_bound(source: str, says: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(says)):
        compile_expression(source).evaluate({"input": {"x": 1.5, "digits": "9" * 2000}})
    assert compile_expression("round(1234, -2) + round(2.675, 2)").evaluate({}) == 1200 + round(2.675, 2)


@pytest.mark.parametrize(
    "source", ['float("nan")', 'float("inf")', "1e308 * 10", '[1, {"a": -float("inf")}]', "1e999"]
)
def test_an_expression_giving_nan_or_an_infinity_is_an_error(source: str) -> None:
    """No JSON value holds one: it must never reach what is stored."""
    with pytest.raises(ExpressionError, match="NaN or an infinity"):
        compile_expression(source).evaluate({"input": {}, "steps": {}, "metadata": {}})


def test_a_non_finite_value_inside_an_expression_may_still_be_compared() -> None:
    scope: dict[str, Any] = {"input": {}, "steps": {}, "metadata": {}}
    assert compile_expression('float("nan") > 1').evaluate(scope) is False
