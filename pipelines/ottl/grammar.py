"""OTTL text to a syntax tree: a recursive-descent parser over the `lexer`'s tokens.

The grammar follows the Collector's (`pkg/ottl/grammar.go`): a statement is an editor
call with an optional `where` clause; a boolean expression is terms joined by `or`, a term is values
joined by `and`, a value is an optional `not` then a comparison, `true`/`false`, a converter call or a
parenthesised expression. Literals are Go's: strings with Go escapes (`strconv.Unquote`), 64-bit ints,
floats written with a dot, `0x` bytes, `nil`. Math expressions, list and map literals and named
arguments parse in OTTL but are refused here with their name, so nothing is silently misread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal as TypingLiteral

from pipelines.ottl.lexer import OttlError, Token, tokenize

_KEYWORDS = frozenset({"and", "or", "not", "where", "nil", "true", "false"})

Op = TypingLiteral["==", "!=", "<", "<=", ">", ">="]


# ---------------------------------------------------------------- syntax tree

@dataclass(frozen=True)
class Literal:
    kind: TypingLiteral["nil", "string", "int", "float", "bool", "bytes"]
    value: str | int | float | bool | bytes | None


@dataclass(frozen=True)
class Enum:
    name: str


@dataclass(frozen=True)
class Segment:
    name: str
    keys: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class Path:
    segments: tuple[Segment, ...]
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Value, ...]
    keys: tuple[str | int, ...] = ()


Value = Literal | Enum | Path | Call


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


# ---------------------------------------------------------------- parser

def parse_statement(text: str) -> Statement:
    p = _Parser(text)
    tok = p.next()
    if tok.kind != "ident" or p.peek().text != "(":
        raise p.unexpected(tok, "an editor call such as route()")
    if tok.text[0].isupper():
        raise OttlError(f"editor names must start with a lowercase letter but got '{tok.text}'")
    args = p.arguments()
    if p.peek().text == "[":
        raise OttlError(f"only paths and converters may be indexed, not editors, but got {tok.text}")
    where: BoolExpr | None = None
    if p.peek().kind == "ident" and p.peek().text == "where":
        p.next()
        where = p.bool_expr()
    p.expect_end()
    return Statement(tok.text, args, where)


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

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def unexpected(self, tok: Token, wanted: str) -> OttlError:
        if tok.kind == "eof":
            return OttlError(f"unexpected end of input, expected {wanted}")
        return OttlError(f"unexpected {tok.text!r} at offset {tok.pos}, expected {wanted}")

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
        if self.peek().text == "(" and self.peek().kind == "punct":
            self.next()
            expr = self.bool_expr()
            self.expect(")")
        else:
            start = self.peek()
            left = self.value()
            if self.peek().kind == "cmp":
                op = self.next().text
                expr = Compare(left, op, self.value())  # type: ignore[arg-type]
            elif isinstance(left, Call) or (isinstance(left, Literal) and left.kind == "bool"):
                expr = left
            else:
                before = self.text[start.pos:self.peek().pos].strip()
                raise self.unexpected(self.peek(), f"a comparison operator after {before}")
        return Not(expr) if negate else expr

    def value(self) -> Value:
        tok = self.next()
        result: Value
        if tok.kind in ("string", "int", "float", "bytes"):
            result = Literal(tok.kind, tok.value)  # type: ignore[arg-type]
        elif tok.kind == "ident":
            result = self.ident_value(tok)
        elif tok.text == "[":
            raise OttlError(f"list literals are not supported (at offset {tok.pos})")
        elif tok.text == "{":
            raise OttlError(f"map literals are not supported (at offset {tok.pos})")
        else:
            raise self.unexpected(tok, "a value")
        if self.peek().kind == "math":
            raise OttlError(f"math expressions ({self.peek().text}) are not supported (at offset {self.peek().pos})")
        return result

    def ident_value(self, tok: Token) -> Value:
        word = tok.text
        if word == "nil":
            return Literal("nil", None)
        if word in ("true", "false"):
            return Literal("bool", word == "true")
        if word in _KEYWORDS:
            raise self.unexpected(tok, "a value")
        if self.peek().text == "(" and self.peek().kind == "punct":
            if not word[0].isupper():
                raise OttlError(f"converter names must start with an uppercase letter but got '{word}'")
            return Call(word, self.arguments(), self.keys())
        if word[0].isupper():
            if not all(ch.isupper() or ch.isdigit() or ch == "_" for ch in word):
                raise self.unexpected(tok, "a value (a converter call needs parentheses)")
            return Enum(word)
        return self.path(tok)

    def path(self, first: Token) -> Path:
        segments = [Segment(self.segment_name(first), self.keys())]
        while self.peek().text == "." and self.peek().kind == "punct":
            self.next()
            tok = self.next()
            if tok.kind != "ident":
                raise self.unexpected(tok, "a path segment")
            segments.append(Segment(self.segment_name(tok), self.keys()))
        end = self.peek().pos
        return Path(tuple(segments), self.text[first.pos:end].strip())

    def segment_name(self, tok: Token) -> str:
        name = tok.text
        if not (name[0].islower() and all(ch.islower() or ch.isdigit() or ch == "_" for ch in name)):
            raise OttlError(f"invalid path segment '{name}' at offset {tok.pos}: paths are lowercase")
        return name

    def keys(self) -> tuple[str | int, ...]:
        keys: list[str | int] = []
        while self.peek().text == "[" and self.peek().kind == "punct":
            self.next()
            tok = self.next()
            if tok.kind not in ("string", "int"):
                raise OttlError(f"only string or int literal keys are supported, got {tok.text!r} at offset {tok.pos}")
            keys.append(tok.value)  # type: ignore[arg-type]
            self.expect("]")
        return tuple(keys)

    def arguments(self) -> tuple[Value, ...]:
        self.expect("(")
        args: list[Value] = []
        if self.peek().text == ")" and self.peek().kind == "punct":
            self.next()
            return ()
        while True:
            if self.peek().kind == "ident" and self.tokens[self.i + 1].text == "=":
                raise OttlError(f"named arguments are not supported ({self.peek().text}=)")
            args.append(self.value())
            tok = self.next()
            if tok.text == ")" and tok.kind == "punct":
                return tuple(args)
            if tok.text != "," or tok.kind != "punct":
                raise self.unexpected(tok, "',' or ')'")
