"""OTTL text to a syntax tree: a recursive-descent parser over the `lexer`'s tokens.

The grammar is the Collector's (`pkg/ottl/grammar.go`, `LANGUAGE.md`):
- a statement is an editor call (lowercase name) with an optional `where` clause;
- a boolean expression is terms joined by `or`, a term is values joined by `and`, a value is an
  optional `not` then a comparison, `true`/`false`, a converter call or a parenthesised expression;
- a value is a literal (Go's strings, 64-bit ints, floats written with a dot, `0x` bytes, `nil`,
  `true`/`false`), an enum symbol or function name (an uppercase identifier without parentheses), a
  path (`context.field.field["key"][0]`), a converter call (uppercase name, optionally indexed:
  `Split(x, ",")[0]`), a list `[a, b]`, a map `{"k": v}`, or a math expression (`+ - * /` with the
  usual precedence and parentheses) over literals, paths and converters;
- arguments are positional, then named (`name = value`);
- keys are string or int literals, or paths and converters whose value is a string or an int.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal as TypingLiteral

from pipelines.ottl.lexer import OttlError, Token, tokenize

_KEYWORDS = frozenset({"and", "or", "not", "where", "nil", "true", "false"})

Op = TypingLiteral["==", "!=", "<", "<=", ">", ">="]
MathOp = TypingLiteral["+", "-", "*", "/"]


# ---------------------------------------------------------------- syntax tree

@dataclass(frozen=True)
class Literal:
    kind: TypingLiteral["nil", "string", "int", "float", "bool", "bytes"]
    value: str | int | float | bool | bytes | None


@dataclass(frozen=True)
class Enum:
    """An uppercase identifier without parentheses: an enum symbol, or a function name passed as an
    argument (`replace_pattern(..., SHA256)`); what it is depends on where it is used."""

    name: str


@dataclass(frozen=True)
class Segment:
    name: str
    keys: tuple[str | int | Path | Call, ...] = ()


@dataclass(frozen=True)
class Path:
    segments: tuple[Segment, ...]
    text: str = field(default="", compare=False)
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Value, ...]
    keys: tuple[str | int | Path | Call, ...] = ()
    named: tuple[tuple[str, Value], ...] = ()
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ListLit:
    items: tuple[Value, ...]


@dataclass(frozen=True)
class MapLit:
    items: tuple[tuple[str, Value], ...]


@dataclass(frozen=True)
class Math:
    op: MathOp
    left: Value
    right: Value


Value = Literal | Enum | Path | Call | ListLit | MapLit | Math


@dataclass(frozen=True)
class Compare:
    left: Value
    op: Op
    right: Value


@dataclass(frozen=True)
class Not:
    expr: BoolExpr


@dataclass(frozen=True)
class And:
    items: tuple[BoolExpr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[BoolExpr, ...]


BoolExpr = Compare | Not | And | Or | Literal | Call


@dataclass(frozen=True)
class Statement:
    editor: str
    args: tuple[Value, ...]
    where: BoolExpr | None
    named: tuple[tuple[str, Value], ...] = ()


# ---------------------------------------------------------------- parser

def parse_statement(text: str) -> Statement:
    p = _Parser(text)
    tok = p.next()
    if tok.kind != "ident" or p.peek().text != "(":
        raise p.unexpected(tok, "an editor call such as set(...)")
    if tok.text[0].isupper():
        raise OttlError(f"editor names must start with a lowercase letter but got '{tok.text}'")
    args, named = p.arguments()
    if p.peek().text == "[":
        raise OttlError(f"only paths and converters may be indexed, not editors, but got {tok.text}")
    where: BoolExpr | None = None
    if p.peek().kind == "ident" and p.peek().text == "where":
        p.next()
        where = p.bool_expr()
    p.expect_end()
    return Statement(tok.text, args, where, named)


def parse_condition(text: str) -> BoolExpr:
    p = _Parser(text)
    expr = p.bool_expr()
    p.expect_end()
    return expr


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def unexpected(self, tok: Token, wanted: str) -> OttlError:
        if tok.kind == "eof":
            return OttlError(f"unexpected end of input, expected {wanted}")
        return OttlError(f"unexpected {tok.text!r} at col {tok.pos + 1}, expected {wanted}")

    def punct(self, text: str) -> bool:
        tok = self.peek()
        return tok.kind == "punct" and tok.text == text

    def expect(self, text: str) -> Token:
        tok = self.next()
        if tok.text != text or tok.kind in ("string", "eof"):
            raise self.unexpected(tok, repr(text))
        return tok

    def expect_end(self) -> None:
        tok = self.peek()
        if tok.kind != "eof":
            raise self.unexpected(tok, "end of input")

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "ident" and tok.text == word

    # -- boolean expressions

    def bool_expr(self) -> BoolExpr:
        items = [self.term()]
        while self.is_word("or"):
            self.next()
            items.append(self.term())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def term(self) -> BoolExpr:
        items = [self.bool_value()]
        while self.is_word("and"):
            self.next()
            items.append(self.bool_value())
        return items[0] if len(items) == 1 else And(tuple(items))

    def bool_value(self) -> BoolExpr:
        negate = self.is_word("not")
        if negate:
            self.next()
        expr: BoolExpr
        if self.punct("("):
            # `(a or b)` or a math expression in parentheses compared: `(x + 1) > 2`.
            start = self.i
            try:
                self.next()
                expr = self.bool_expr()
                self.expect(")")
                if self.peek().kind in ("cmp", "math"):
                    raise OttlError("a parenthesised value, not a boolean expression")
            except OttlError:
                self.i = start
                expr = self.comparison()
        else:
            expr = self.comparison()
        return Not(expr) if negate else expr

    def comparison(self) -> BoolExpr:
        start = self.peek()
        left = self.value()
        if self.peek().kind == "cmp":
            op = self.next().text
            return Compare(left, op, self.value())  # type: ignore[arg-type]
        if isinstance(left, Call) or (isinstance(left, Literal) and left.kind == "bool"):
            return left
        before = self.text[start.pos:self.peek().pos].strip()
        raise self.unexpected(self.peek(), f"a comparison operator after {before}")

    # -- values

    def value(self) -> Value:
        tok = self.peek()
        if tok.kind == "punct" and tok.text == "[":
            return self.list_literal()
        if tok.kind == "punct" and tok.text == "{":
            return self.map_literal()
        return self.math_expr()

    def math_expr(self) -> Value:
        left = self.math_term()
        while self.peek().kind == "math" and self.peek().text in "+-":
            left = self.operation(left, self.math_term)
        return left

    def math_term(self) -> Value:
        left = self.math_factor()
        while self.peek().kind == "math" and self.peek().text in "*/":
            left = self.operation(left, self.math_factor)
        return left

    def operation(self, left: Value, operand: Callable[[], Value]) -> Math:
        tok = self.next()
        right = operand()
        for side in (left, right):
            if not _mathable(side):
                raise OttlError(f"the {_describe(side)} cannot be used in a math expression (at col {tok.pos + 1})")
        return Math(tok.text, left, right)  # type: ignore[arg-type]

    def math_factor(self) -> Value:
        if self.punct("("):
            self.next()
            inner = self.math_expr()
            self.expect(")")
            return inner
        return self.atom()

    def atom(self) -> Value:
        tok = self.next()
        if tok.kind in ("string", "int", "float", "bytes"):
            return Literal(tok.kind, tok.value)  # type: ignore[arg-type]
        if tok.kind == "ident":
            return self.ident_value(tok)
        raise self.unexpected(tok, "a value")

    def ident_value(self, tok: Token) -> Value:
        word = tok.text
        if word == "nil":
            return Literal("nil", None)
        if word in ("true", "false"):
            return Literal("bool", word == "true")
        if word in _KEYWORDS:
            raise self.unexpected(tok, "a value")
        if self.punct("("):
            if not word[0].isupper():
                raise OttlError(f"converter names must start with an uppercase letter but got '{word}'")
            args, named = self.arguments()
            return Call(word, args, self.keys(), named, tok.pos)
        if word[0].isupper():
            return Enum(word)
        return self.path(tok)

    def path(self, first: Token) -> Path:
        segments = [Segment(self.segment_name(first), self.keys())]
        while self.punct("."):
            self.next()
            tok = self.next()
            if tok.kind != "ident":
                raise self.unexpected(tok, "a path segment")
            segments.append(Segment(self.segment_name(tok), self.keys()))
        end = self.peek().pos
        return Path(tuple(segments), self.text[first.pos:end].strip(), first.pos)

    def segment_name(self, tok: Token) -> str:
        name = tok.text
        if not (name[0].islower() and all(ch.islower() or ch.isdigit() or ch == "_" for ch in name)):
            raise OttlError(f"invalid path segment '{name}' at col {tok.pos + 1}: paths are lowercase")
        return name

    def keys(self) -> tuple[str | int | Path | Call, ...]:
        keys: list[str | int | Path | Call] = []
        while self.punct("["):
            self.next()
            tok = self.peek()
            if tok.kind in ("string", "int"):
                self.next()
                keys.append(tok.value)  # type: ignore[arg-type]
            elif tok.kind == "ident" and tok.text not in _KEYWORDS:
                key = self.ident_value(self.next())
                if not isinstance(key, (Path, Call)):
                    raise OttlError(f"a key must be a string, an int, a path or a converter, got {tok.text!r} "
                                    f"at col {tok.pos + 1}")
                keys.append(key)
            else:
                raise OttlError(f"a key must be a string, an int, a path or a converter, got {tok.text!r} "
                                f"at col {tok.pos + 1}")
            self.expect("]")
        return tuple(keys)

    def arguments(self) -> tuple[tuple[Value, ...], tuple[tuple[str, Value], ...]]:
        self.expect("(")
        args: list[Value] = []
        named: list[tuple[str, Value]] = []
        if self.punct(")"):
            self.next()
            return (), ()
        while True:
            if self.peek().kind == "ident" and self.peek(1).kind == "punct" and self.peek(1).text == "=":
                name = self.next().text
                self.next()
                if any(n == name for n, _ in named):
                    raise OttlError(f"the argument {name} is given twice")
                named.append((name, self.value()))
            else:
                if named:
                    raise OttlError(f"positional arguments cannot come after named arguments "
                                    f"(at col {self.peek().pos + 1})")
                args.append(self.value())
            tok = self.next()
            if tok.text == ")" and tok.kind == "punct":
                return tuple(args), tuple(named)
            if tok.text != "," or tok.kind != "punct":
                raise self.unexpected(tok, "',' or ')'")

    def list_literal(self) -> ListLit:
        self.expect("[")
        items: list[Value] = []
        if self.punct("]"):
            self.next()
            return ListLit(())
        while True:
            items.append(self.value())
            tok = self.next()
            if tok.text == "]" and tok.kind == "punct":
                return ListLit(tuple(items))
            if tok.text != "," or tok.kind != "punct":
                raise self.unexpected(tok, "',' or ']'")

    def map_literal(self) -> MapLit:
        self.expect("{")
        items: list[tuple[str, Value]] = []
        if self.punct("}"):
            self.next()
            return MapLit(())
        while True:
            tok = self.next()
            if tok.kind != "string":
                raise self.unexpected(tok, "a string key")
            self.expect(":")
            items.append((str(tok.value), self.value()))
            tok = self.next()
            if tok.text == "}" and tok.kind == "punct":
                return MapLit(tuple(items))
            if tok.text != "," or tok.kind != "punct":
                raise self.unexpected(tok, "',' or '}'")


def _mathable(v: Value) -> bool:
    return isinstance(v, (Path, Call, Math)) or (isinstance(v, Literal) and v.kind in ("int", "float"))


def _describe(v: Value) -> str:
    if isinstance(v, Literal):
        return f"{v.kind} literal"
    if isinstance(v, Enum):
        return f"enum symbol {v.name}"
    return type(v).__name__.lower()
