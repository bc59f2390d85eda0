"""`ParseXML` (contrib `pkg/ottl/ottlfuncs`, v0.161.0): an XML document as nested maps, as Go's
`encoding/xml` decoder reads it.

Each element is `{"tag": name, "content": text, "attributes": {...}, "children": [...]}`, the last
three only when not empty. Names lose their namespace prefix (`a:b` is `b`, `xmlns:x` is `x`, as
Go's `Name.Local`); an element's content is its runs of text (a CDATA section is a run of its own,
comments and processing instructions end one), each trimmed of white space, joined. Nothing may
follow the root element, not even a newline ("trailing bytes after parsing xml"); a document
declaring an encoding other than UTF-8 is refused, as there.

Parsed with the standard library's expat (no external entities, no DTD loading).
"""

from __future__ import annotations

import re
from typing import Any
from xml.parsers import expat

from pipelines.ottl.contexts import Env, Getter
from pipelines.ottl.functions.registry import converter
from pipelines.ottl.functions.strings import GO_SPACE
from pipelines.ottl.values import EvalError, PMap
from pipelines.processors import anyvalue

_ENCODING = re.compile(r"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([^"']*)["']""")


def local_name(name: str) -> str:
    """Go's `Name.Local`: the part after a single `prefix:`; a name with an empty side is kept whole,
    one with more colons is a syntax error there (ValueError)."""
    if name.count(":") > 1:
        raise ValueError(f"unmarshal xml: decode next token: XML syntax error: expected element name, "
                         f"got {name!r}")
    if ":" not in name:
        return name
    space, _, local = name.partition(":")
    return local if space and local else name


class _Element:
    __slots__ = ("attributes", "children", "tag", "text")

    def __init__(self, tag: str, attributes: list[str]) -> None:
        self.tag = local_name(tag)
        self.attributes: dict[str, str] = {}
        for i in range(0, len(attributes), 2):
            self.attributes[local_name(attributes[i])] = attributes[i + 1]
        self.text = ""
        self.children: list[_Element] = []

    def as_raw(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tag": self.tag}
        if self.text:
            out["content"] = self.text
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        if self.children:
            out["children"] = [c.as_raw() for c in self.children]
        return out


# How deep elements may nest: the converted value is built recursively, and a deeper document is an
# attack more than a log line.
_MAX_DEPTH = 200


def parse_xml(text: str) -> dict[str, Any]:
    """The document as plain data; ValueError with the reason when Go's decoder would refuse it."""
    declared = _ENCODING.match(text)
    if declared and declared.group(1).lower() != "utf-8":
        raise ValueError(f'xml: encoding "{declared.group(1)}" declared but Decoder.CharsetReader is nil')
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.buffer_size = max(len(text.encode()) + 1, 1024)
    parser.ordered_attributes = True
    stack: list[_Element] = []
    roots: list[_Element] = []

    def start(name: str, attributes: list[str]) -> None:
        element = _Element(name, attributes)
        if stack:
            stack[-1].children.append(element)
        else:
            roots.append(element)
        stack.append(element)

    def end(name: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        if stack:
            stack[-1].text += data.strip(GO_SPACE)  # buffer_text hands over whole runs: few appends

    def ignore(*args: Any) -> None:  # comments and processing instructions: they end a run of text
        return None

    def no_dtd(*args: Any) -> None:
        # Go's decoder expands no entity a document declares ("invalid character entity"); expat
        # would, and a few hundred bytes of nested entities expand to megabytes on the event loop.
        raise ValueError("unmarshal xml: entities a document declares are not expanded (as Go's decoder)")

    def depth_checked(name: str, attributes: list[str]) -> None:
        if len(stack) >= _MAX_DEPTH:
            raise ValueError(f"unmarshal xml: elements nested deeper than {_MAX_DEPTH}")
        start(name, attributes)

    parser.StartElementHandler = depth_checked
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.EntityDeclHandler = no_dtd
    parser.CommentHandler = ignore
    parser.ProcessingInstructionHandler = ignore
    parser.StartCdataSectionHandler = ignore
    parser.EndCdataSectionHandler = ignore
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise ValueError(f"unmarshal xml: {expat.ErrorString(exc.code)}") from None
    if not roots:
        raise ValueError("unmarshal xml: EOF")
    # Expat lets white space, comments and processing instructions follow the root; Go's decoder
    # stops at the root's end and counts anything after it as trailing bytes.
    if text != text.rstrip(GO_SPACE) or text.endswith(("-->", "?>")):
        raise ValueError("trailing bytes after parsing xml")
    return roots[0].as_raw()


@converter("ParseXML", "target:string")
def parse_xml_converter(target: Getter) -> Any:
    def run(env: Env) -> PMap:
        try:
            raw = parse_xml(target(env))
        except ValueError as exc:
            raise EvalError(str(exc)) from None
        return PMap(anyvalue.from_raw(raw).kvlist_value.values)
    return run
