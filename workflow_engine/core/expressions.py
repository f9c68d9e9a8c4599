"""The condition language: a small, safe subset of Python expressions.

Expressions are parsed with :mod:`ast` and walked over an explicit allow-list; nothing is ever
passed to ``eval``. Attribute access is key lookup in plain data (``steps.review.score`` is
``steps["review"]["score"]``): no Python attribute of any object is ever read, names starting
with ``_`` are refused, and only the functions listed in :data:`FUNCTIONS` may be called.

An error never quotes a secret: evaluated over a scope whose secrets were opened
(:class:`~workflow_engine.core.secrets.Opened`), every error's text has those secrets' texts
masked as it is made, however the value got into it (a key looked up, a function's failure).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workflow_engine.core.secrets import Opened, hide_quoted
from workflow_engine.errors import ExpressionError

ROOT_NAMES = frozenset({"input", "steps", "metadata"})
MAX_LENGTH = 2000
MAX_DEPTH = 50
_MAX_SEQUENCE = 100_000
# what the expressions of one decision may cost together (a step's outgoing conditions, the
# timers it opens), in units of about one element or character handled: every node costs one, a
# function, comparison or operation as much as the data it goes through; a unit takes well under
# a microsecond, so a decision over large step outputs spends a fraction of a second at most
BUDGET = 1_000_000
# integers are bounded too, so that no operation on them is costly (multiplying two numbers of
# this size takes microseconds; repeated squaring would otherwise double the size each time)
MAX_INT_BITS = 4096
_MAX_ROUND_DIGITS = 1000
# what may be used as a dict key or looked up in a mapping
_KEYS = (str, int, float, bool, type(None))


def _get(container: Any, key: Any, default: Any = None) -> Any:
    if isinstance(container, Mapping):
        return container.get(key, default)
    return default


def _lower(text: Any) -> str:
    if not isinstance(text, str):
        raise ExpressionError(f"lower() expects a string, not {type(text).__name__}")
    return text.lower()


def _round(number: Any, digits: Any = None) -> Any:
    # an integer rounded to -n digits computes 10**n: bound n as integers are bounded
    if digits is not None and not (isinstance(digits, int) and abs(digits) <= _MAX_ROUND_DIGITS):
        raise ExpressionError(f"round() takes at most {_MAX_ROUND_DIGITS} digits either way")
    return round(number) if digits is None else round(number, digits)


def _upper(text: Any) -> str:
    if not isinstance(text, str):
        raise ExpressionError(f"upper() expects a string, not {type(text).__name__}")
    return text.upper()


FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "len": len,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "abs": abs,
    "min": min,
    "max": max,
    "round": _round,
    "lower": _lower,
    "upper": _upper,
    "get": _get,
}

_BINARY: Mapping[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}

_COMPARE: Mapping[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: bool(a == b),
    ast.NotEq: lambda a, b: bool(a != b),
    ast.Lt: lambda a, b: bool(a < b),
    ast.LtE: lambda a, b: bool(a <= b),
    ast.Gt: lambda a, b: bool(a > b),
    ast.GtE: lambda a, b: bool(a >= b),
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b,
}

_ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Compare,
    ast.IfExp,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Attribute,
    ast.Subscript,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.Call,
    *_BINARY,
    *_COMPARE,
)


@dataclass(frozen=True)
class Expression:
    """A checked expression, ready to evaluate against ``input``, ``steps`` and ``metadata``."""

    source: str
    tree: ast.Expression = field(repr=False, compare=False)
    step_refs: frozenset[str] = frozenset()
    dynamic_step_refs: bool = False

    def evaluate(self, scope: Mapping[str, Any], budget: Budget | None = None) -> Any:
        """The expression's value over ``scope``; any failure is :class:`ExpressionError`.
        Its cost is drawn from ``budget``, shared by the expressions of one decision (a budget
        of its own by default)."""
        try:
            value = _Evaluator(scope, budget or Budget()).visit(self.tree.body)
            if not _finite(value):
                raise ExpressionError("gives NaN or an infinity, which no JSON value can hold")
            return value
        except ExpressionError as exc:
            message = exc.message
        except RecursionError:
            message = "expression is nested too deeply"
        except (TypeError, ValueError, ArithmeticError, MemoryError) as exc:
            # the evaluator checks what it can; anything left is still the expression's fault
            message = f"cannot be evaluated: {exc}"
        if isinstance(scope, Opened):
            message = hide_quoted(message, scope.texts)
        raise ExpressionError(message, self.source)

    def truth(self, scope: Mapping[str, Any], budget: Budget | None = None) -> bool:
        return bool(self.evaluate(scope, budget))

    @property
    def reads_data(self) -> bool:
        """Whether the expression reads ``input``, ``steps`` or ``metadata`` (if not, its value
        is known when it is written)."""
        return any(isinstance(node, ast.Name) and node.id in ROOT_NAMES for node in ast.walk(self.tree))


def _finite(value: Any) -> bool:
    """Whether ``value`` holds no NaN and no infinity, at any depth."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


ITEM_NAMES = frozenset({"item", "index"})  # also allowed in a map step's per-item ``input``


def compile_expression(source: str, names: frozenset[str] = ROOT_NAMES) -> Expression:
    """Parse and check ``source``, which may use ``names``; raise :class:`ExpressionError`
    describing the first problem."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("expression is empty")
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise ExpressionError(f"syntax error{where}: {exc.msg}", source) from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError("expression cannot be parsed", source) from None
    refs, dynamic = _Checker(source, names).check(tree)
    return Expression(source=source, tree=tree, step_refs=frozenset(refs), dynamic_step_refs=dynamic)


class _Checker:
    """Static check: allowed node types, names, attributes and calls; collects step references."""

    def __init__(self, source: str, names: frozenset[str] = ROOT_NAMES) -> None:
        self.source = source
        self.names = names
        self.refs: set[str] = set()
        self.dynamic = False

    def fail(self, message: str) -> ExpressionError:
        return ExpressionError(message, self.source)

    def check(self, tree: ast.Expression) -> tuple[set[str], bool]:
        self._visit(tree, 0)
        return self.refs, self.dynamic

    def _visit(self, node: ast.AST, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.fail("expression is nested too deeply")
        if not isinstance(node, _ALLOWED_NODES):
            raise self.fail(f"{type(node).__name__} is not allowed")
        if isinstance(node, ast.Constant) and not (
            node.value is None or isinstance(node.value, (bool, int, float, str))
        ):
            raise self.fail(f"constant of type {type(node.value).__name__} is not allowed")
        if isinstance(node, ast.Name) and node.id not in self.names:
            allowed = ", ".join(sorted(self.names))
            raise self.fail(f"unknown name {node.id!r} (names allowed: {allowed})")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise self.fail(f"attribute {node.attr!r} is not allowed")
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            raise self.fail("slices are not allowed")
        if isinstance(node, ast.Call):
            self._check_call(node, depth)
            return
        self._note_step_ref(node)
        for child in ast.iter_child_nodes(node):
            self._visit(child, depth + 1)

    def _check_call(self, node: ast.Call, depth: int) -> None:
        if not isinstance(node.func, ast.Name):
            self._visit(node.func, depth + 1)  # report the innermost offence first
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            allowed = ", ".join(sorted(FUNCTIONS))
            raise self.fail(f"call of {name!r} is not allowed (functions allowed: {allowed})")
        if node.keywords:
            raise self.fail("keyword arguments are not allowed")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.fail("starred arguments are not allowed")
            self._visit(arg, depth + 1)

    def _note_step_ref(self, node: ast.AST) -> None:
        target: ast.AST | None = None
        key: ast.AST | None = None
        if isinstance(node, ast.Attribute):
            target, step = node.value, node.attr
            if isinstance(target, ast.Name) and target.id == "steps":
                self.refs.add(step)
            return
        if isinstance(node, ast.Subscript):
            target, key = node.value, node.slice
            if isinstance(target, ast.Name) and target.id == "steps":
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    self.refs.add(key.value)
                else:
                    self.dynamic = True


class Budget:
    """What evaluations may still cost, in the units of :data:`BUDGET`."""

    def __init__(self, units: int = BUDGET) -> None:
        self.left = units

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise ExpressionError("expression exceeds its evaluation budget (the data it reads is too large)")


class _Evaluator:
    """Walks a checked tree; every operation is on plain data and explicit."""

    def __init__(self, scope: Mapping[str, Any], budget: Budget) -> None:
        self.scope = scope
        self.spend = budget.spend

    def visit(self, node: ast.AST) -> Any:
        self.spend(1)
        method: Callable[[Any], Any] = getattr(self, f"_{type(node).__name__}", self._refuse)
        return method(node)

    def _refuse(self, node: ast.AST) -> Any:
        raise ExpressionError(f"{type(node).__name__} is not allowed")

    def _Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        if node.id in ROOT_NAMES:
            return self.scope.get(node.id, {})
        if node.id in ITEM_NAMES and node.id in self.scope:
            return self.scope[node.id]
        raise ExpressionError(f"unknown name {node.id!r}")

    def _Attribute(self, node: ast.Attribute) -> Any:
        return self._lookup(self.visit(node.value), node.attr, node)

    def _Subscript(self, node: ast.Subscript) -> Any:
        return self._lookup(self.visit(node.value), self.visit(node.slice), node)

    def _lookup(self, container: Any, key: Any, node: ast.AST) -> Any:
        where = ast.unparse(node.value) if isinstance(node, (ast.Attribute, ast.Subscript)) else ""
        if isinstance(key, str) and key.startswith("_"):
            raise ExpressionError(f"key {key!r} is not allowed")
        if isinstance(container, Mapping):
            if not isinstance(key, _KEYS):
                raise ExpressionError(f"cannot look up a {_kind(key)} in {where}: keys are strings")
            if key not in container:
                raise ExpressionError(f"{where} has no key {key!r}")
            return container[key]
        if isinstance(container, (list, tuple, str)) and isinstance(key, int) and not isinstance(key, bool):
            if -len(container) <= key < len(container):
                return container[key]
            raise ExpressionError(f"index {key} is out of range for {where}")
        shown = "null" if container is None else type(container).__name__
        raise ExpressionError(f"cannot look up {key!r} in {where} ({shown})")

    def _List(self, node: ast.List) -> list[Any]:
        return [self.visit(item) for item in node.elts]

    def _Tuple(self, node: ast.Tuple) -> tuple[Any, ...]:
        return tuple(self.visit(item) for item in node.elts)

    def _Dict(self, node: ast.Dict) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise ExpressionError("dict unpacking is not allowed")
            name = self.visit(key)
            if not isinstance(name, _KEYS):
                raise ExpressionError(f"a {_kind(name)} cannot be a dict key")
            result[name] = self.visit(value)
        return result

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for operand in node.values:
            value = self.visit(operand)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return not operand
        if not _is_number(operand):
            raise ExpressionError(f"unary minus or plus needs a number, not {_kind(operand)}")
        return -operand if isinstance(node.op, ast.USub) else +operand

    def _BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        op = type(node.op)
        if op is ast.Add and _same_sequence(left, right):
            if len(left) + len(right) > _MAX_SEQUENCE:
                raise ExpressionError("result is too long")
            self.spend(len(left) + len(right))
            return left + right
        if not (_is_number(left) and _is_number(right)):
            raise ExpressionError(f"cannot apply {ast.unparse(node)!r} to {_kind(left)} and {_kind(right)}")
        self.spend(_weight(left) + _weight(right))
        if _too_large(left) or _too_large(right):
            raise ExpressionError(f"number too large (integers have at most {MAX_INT_BITS} bits)")
        try:
            return _BINARY[op](left, right)
        except ZeroDivisionError:
            raise ExpressionError("division by zero") from None
        except OverflowError:
            raise ExpressionError("number too large") from None

    def _Compare(self, node: ast.Compare) -> bool:
        left = self.visit(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.visit(comparator)
            self.spend(_weight(left) + _weight(right))
            try:
                ok = _COMPARE[type(op)](left, right)
            except TypeError:
                raise ExpressionError(f"cannot compare {_kind(left)} with {_kind(right)}") from None
            if not ok:
                return False
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def _Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ExpressionError("call is not allowed")
        args = [self.visit(arg) for arg in node.args]
        if node.func.id != "len":  # len is O(1); the others go through their arguments
            self.spend(sum(_weight(arg) for arg in args))
        try:
            result = FUNCTIONS[node.func.id](*args)
            self.spend(_weight(result))
            if _too_large(result):
                raise ExpressionError(f"number too large (integers have at most {MAX_INT_BITS} bits)")
            return result
        except ExpressionError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise ExpressionError(f"{node.func.id}() failed: {exc}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _too_large(value: Any) -> bool:
    return isinstance(value, int) and value.bit_length() > MAX_INT_BITS


def _same_sequence(left: Any, right: Any) -> bool:
    return (isinstance(left, str) and isinstance(right, str)) or (
        isinstance(left, (list, tuple)) and type(left) is type(right)
    )


def _weight(value: Any) -> int:
    """About how many elements or characters an operation on ``value`` goes through: the
    length of a string or container (nested containers by their length too, at each level an
    operation compares or renders them), the machine words of an integer, else one."""
    if isinstance(value, (str, bytes)):
        return len(value) + 1
    if isinstance(value, (list, tuple, dict)):
        return (
            len(value)
            + sum(
                len(v)
                for v in (value.values() if isinstance(value, dict) else value)
                if isinstance(v, (str, list, tuple, dict))
            )
            + 1
        )
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 64 + 1
    return 1


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def step_names_referenced(expressions: Sequence[Expression]) -> frozenset[str]:
    """Every step whose output any of ``expressions`` reads."""
    names: set[str] = set()
    for expression in expressions:
        names |= expression.step_refs
    return frozenset(names)
