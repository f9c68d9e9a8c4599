"""Masking what an agent or an expression makes of a secret, refusing sealed values from outside,
and binding each sealed value to its owner and its execution or schedule."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

from workflow_engine.core import secrets
from workflow_engine.core.expressions import compile_expression
from workflow_engine.errors import ExpressionError
from workflow_engine.secrets import UNBOUND, Binding, KeyMissing, Keyring, new_key

pytestmark = pytest.mark.unit

KEY = new_key()
ALICE = Binding.execution(1, "alice-execution")


# masking: a property over random placements

# a secret has no "*" nor "'" (what a mask and a renamed key are made of: a secret made of
# those could be formed by masking itself), and is long enough to hide inside text
SECRET = st.text(
    st.characters(blacklist_characters="*'", blacklist_categories=("Cs",)), min_size=4, max_size=12
)
FILLER = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


@st.composite
def placed(draw: st.DrawFn) -> tuple[Any, list[str]]:
    """A JSON value holding secrets at random places: inside strings at random offsets, as
    keys, as whole values, as numbers, at random depths in lists and mappings; and the secrets'
    texts (as opening their sealed values gives them)."""
    texts = draw(st.lists(SECRET, min_size=1, max_size=3))
    number = draw(st.integers(min_value=1000, max_value=10**12))
    texts.append(str(number))

    def leaf(secret: str) -> Any:
        how = draw(st.sampled_from(["inside", "whole", "number", "key"]))
        if how == "inside":
            return draw(FILLER) + secret + draw(FILLER) + secret[: draw(st.integers(0, len(secret)))]
        if how == "whole":
            return secret
        if how == "number":
            return number
        return {draw(FILLER) + secret + draw(FILLER): draw(FILLER)}

    value: Any = [leaf(draw(st.sampled_from(texts))) for _ in range(draw(st.integers(1, 6)))]
    for _ in range(draw(st.integers(0, 5))):  # buried at a random depth
        value = (draw(st.sampled_from(["list", "dict"])) == "list" and [value]) or {draw(FILLER): value}
    return value, texts


def survivors(value: Any, texts: list[str]) -> list[Any]:
    """Every place in ``value`` where a secret still shows."""
    found: list[Any] = []
    numbers = {int(text) for text in texts if text.isdigit()}
    if isinstance(value, str):
        found += [value for text in texts if text in value]
    elif isinstance(value, bool):
        pass
    elif isinstance(value, (int, float)):
        found += [value] if value in numbers else []
    elif isinstance(value, dict):
        if secrets.is_sealed(value):
            return found
        for key, inner in value.items():
            found += [key for text in texts if text in key]
            found += survivors(inner, texts)
    elif isinstance(value, list):
        for inner in value:
            found += survivors(inner, texts)
    return found


@given(placed())
def test_no_secret_survives_masking_wherever_it_is_placed(case: tuple[Any, list[str]]) -> None:
    value, texts = case
    assert survivors(value, texts)  # (the case does hold them)
    assert survivors(secrets.masked_known(value, texts), texts) == []


@given(placed())
def test_no_secret_survives_sealing_what_an_agent_hands_on(case: tuple[Any, list[str]]) -> None:
    value, texts = case
    sealed = secrets.seal_known({"out": value}, dict.fromkeys(texts, True), lambda plain: "token")
    assert survivors(sealed, texts) == []
    assert survivors(secrets.masked(sealed), texts) == []  # (as every view shows it)


def test_masking_keeps_what_holds_no_secret_and_short_texts_only_where_equal() -> None:
    value = {"n": 12345, "ok": "plain", "pin": "42", "list": ["about 42", 42, True, 1.5], "x-abcd": 12345.0}
    assert secrets.masked_known(value, ["42", "12345", "abcd"]) == {
        "n": "***",
        "ok": "plain",
        "pin": "***",
        "list": ["about 42", "***", True, 1.5],
        "x-***": "***",
    }


def test_hiding_in_text_goes_on_until_no_secret_is_left() -> None:
    # removing the inner one joins the outer one's parts: it is hidden too
    assert secrets.hide("abcWXYZdef", ["WXYZ", "abc***def"]) == "***"


# what comes from outside never holds a sealed value


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"$sealed": "gAAAA"}, "(root)"),
        ({"a": [1, {"b": {"$sealed": "gAAAA"}}]}, "a/1/b"),
        ({"a": {"$sealed": 1, "other": 2}}, "a"),
    ],
)
def test_a_sealed_value_from_outside_is_a_problem_saying_where(data: Any, where: str) -> None:
    problem = secrets.sealed_problem(data)
    assert problem is not None and problem.location == where
    assert "reserved for values the engine seals" in problem.message
    assert secrets.sealed_problem({"a": ["$sealed", {"sealed": 1}]}) is None


# expressions never quote a secret


@pytest.mark.parametrize(
    ("source", "secret"),
    [
        ("int(input.key) > 0", "sk-live-7f3a9"),  # int() failed: invalid literal ... 'sk-live-7f3a9'
        ("steps.a[input.key] == 1", "sk-live-7f3a9"),  # ... has no key 'sk-live-7f3a9'
        ("steps[input.key]", "ab"),  # a short secret, quoted
        ("steps[input.pin]", 918273),  # a number
    ],
)
def test_an_expression_error_over_opened_secrets_never_shows_them(source: str, secret: Any) -> None:
    scope = {"input": {"key": secret, "pin": secret}, "steps": {"a": {}}, "metadata": {}}
    expression = compile_expression(source)
    with pytest.raises(ExpressionError) as plain:
        expression.evaluate(scope)
    assert repr(secret) in str(plain.value) or str(secret) in str(plain.value)  # (it would show)
    with pytest.raises(ExpressionError) as raised:
        expression.evaluate(secrets.Opened(scope, secrets.texts_of(secret)))
    assert str(secret) not in raised.value.message and "***" in raised.value.message


# binding


def test_a_sealed_value_opens_only_for_its_owner_and_its_execution_or_schedule() -> None:
    keys = Keyring(KEY)
    token = keys.seal({"pin": "1234"}, ALICE)
    assert keys.open(token, ALICE) == {"pin": "1234"}
    elsewhere = [
        Binding.execution(2, "alice-execution"),  # another owner
        Binding.execution(1, "bob-execution"),  # another execution
        Binding.schedule(1, "alice-execution"),  # a schedule
    ]
    for binding in elsewhere:
        with pytest.raises(KeyMissing, match="bound to another execution or schedule"):
            keys.open(token, binding)
    with pytest.raises(KeyMissing):
        keys.bound(Binding.execution(1, "bob-execution")).opened({"k": {secrets.SEALED: token}}, {})


def test_the_engine_binds_again_what_it_hands_on_and_nothing_bound_elsewhere() -> None:
    keys = Keyring(KEY)
    schedule, execution = Binding.schedule(1, "nightly"), Binding.execution(1, "e-2")
    value = {"key": {secrets.SEALED: keys.seal("sk-1", schedule)}, "plain": 1}
    moved = keys.rebound(value, schedule, execution)
    assert keys.bound(execution).opened(moved, {}) == {"key": "sk-1", "plain": 1}
    with pytest.raises(KeyMissing):
        keys.open(moved["key"][secrets.SEALED], schedule)
    with pytest.raises(KeyMissing):  # (bound to alice's execution, not to the schedule)
        keys.rebound({"k": {secrets.SEALED: keys.seal("x", ALICE)}}, schedule, execution)


def test_a_value_sealed_before_bindings_opens_nowhere_until_rotation_binds_it_where_it_is() -> None:
    old = Fernet(KEY).encrypt(json.dumps("sk-old").encode()).decode()  # as sealed before bindings
    keys = Keyring(KEY)
    with pytest.raises(KeyMissing) as raised:
        keys.open(old, ALICE)
    assert raised.value.message == UNBOUND and "wfe keys rotate" in UNBOUND
    rotated, changed = keys.rotated({"k": {secrets.SEALED: old}}, ALICE)
    assert changed and keys.bound(ALICE).opened(rotated, {}) == {"k": "sk-old"}
    assert keys.rotated(rotated, ALICE) == (rotated, False)  # (done already: left alone)
    with pytest.raises(KeyMissing):
        keys.open(rotated["k"][secrets.SEALED], Binding.execution(1, "bob-execution"))


def test_an_executions_owner_and_tree_are_looked_up_once_when_first_needed() -> None:
    asked: list[str] = []
    trees = {"alice-execution": (1, "alice-execution"), "child-1": (1, "alice-execution")}

    def tree_of(execution_id: str) -> tuple[int, str] | None:
        asked.append(execution_id)
        return trees.get(execution_id)

    keys = Keyring(KEY, tree_of)
    token = keys.seal("s3cret", ALICE)
    assert asked == []
    assert keys.for_execution("alice-execution").open(token) == "s3cret"
    assert keys.for_execution("alice-execution").open(token) == "s3cret"
    assert asked == ["alice-execution"]
    assert keys.for_execution("child-1").open(token) == "s3cret"  # a child: its tree's values
    child = keys.seal("mine", Binding.execution(1, "child-1", "alice-execution"))
    assert keys.open(child, ALICE) == "mine"
    with pytest.raises(KeyMissing):  # (the same tree named with another owner)
        keys.open(child, Binding.execution(2, "child-1", "alice-execution"))
    with pytest.raises(KeyMissing):
        keys.for_execution("gone").open(token)
