"""Safe parsing and writing of the XMPP-over-WebSocket frames of the streaming service.

RFC 7395 puts exactly one complete XML element in each WebSocket text frame (``<open/>``,
``<close/>``, a stanza, a SASL element), so every frame is parsed on its own by a fresh
:mod:`xml.parsers.expat` parser that refuses what XMPP forbids and what makes XML dangerous
(RFC 6120 §11.1): document type declarations, entity declarations, entity references other than
the five predefined ones, external entities, processing instructions and comments. A frame
larger than :data:`MAX_FRAME_BYTES`, or nested deeper than :data:`MAX_DEPTH`, is refused before
or while parsing. Any refusal is an :class:`XMLRefused` naming the stream error condition the
server answers with (``not-well-formed``, ``restricted-xml``, ``policy-violation``).

Nothing here touches sockets: ``streaming.py`` serves the protocol on top of it.
"""

from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "MAX_DEPTH",
    "MAX_FRAME_BYTES",
    "NS_BIND",
    "NS_CLIENT",
    "NS_EXTDISCO",
    "NS_FRAMING",
    "NS_JSON",
    "NS_PING",
    "NS_PUBSUB",
    "NS_PUBSUB_EVENT",
    "NS_SASL",
    "NS_SESSION",
    "NS_STANZAS",
    "NS_STREAM",
    "NS_STREAMS",
    "Element",
    "XMLRefused",
    "element",
    "parse_frame",
]

#: Frames longer than this (in UTF-8 bytes) get a ``policy-violation`` stream error.
MAX_FRAME_BYTES = 64 * 1024
#: Elements nested deeper than this get a ``policy-violation`` stream error.
MAX_DEPTH = 32

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_CLIENT = "jabber:client"
NS_PING = "urn:xmpp:ping"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_JSON = "urn:xmpp:json:0"
NS_EXTDISCO = "urn:xmpp:extdisco:1"

_SEPARATOR = "\x1f"  # between namespace and local name in expat's names; never in XML names


class XMLRefused(Exception):
    """A frame the server refuses; ``condition`` is the RFC 6120 stream error condition."""

    def __init__(self, condition: str, text: str) -> None:
        super().__init__(text)
        self.condition = condition
        self.text = text


@dataclass
class Element:
    """One parsed element: namespace, local name, attributes (unqualified ones only, as XMPP
    uses), text and children."""

    ns: str
    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Element] = field(default_factory=list)
    text: str = ""

    def child(self, name: str, ns: str | None = None) -> Element | None:
        """The first child called ``name`` (in ``ns`` when given), or ``None``."""
        for item in self.children:
            if item.name == name and (ns is None or item.ns == ns):
                return item
        return None

    def get(self, attr: str, default: str = "") -> str:
        """An attribute's value, ``default`` when absent."""
        return self.attrs.get(attr, default)


def _split(name: str) -> tuple[str, str]:
    ns, sep, local = name.rpartition(_SEPARATOR)
    return (ns, local) if sep else ("", name)


def parse_frame(frame: str) -> Element:
    """The one element in a WebSocket text frame; :class:`XMLRefused` when it is not safe,
    not well-formed, too large or too deep."""
    data = frame.encode("utf-8")
    if len(data) > MAX_FRAME_BYTES:
        raise XMLRefused(
            "policy-violation", f"frame of {len(data)} bytes; at most {MAX_FRAME_BYTES}"
        )
    parser = xml.parsers.expat.ParserCreate("utf-8", _SEPARATOR)
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Element] = []
    roots: list[Element] = []

    def refuse(what: str) -> None:
        raise XMLRefused("restricted-xml", f"{what} is not allowed in XMPP")

    def start(name: str, attrs: dict[str, str]) -> None:
        if len(stack) >= MAX_DEPTH:
            raise XMLRefused("policy-violation", f"elements nested deeper than {MAX_DEPTH}")
        ns, local = _split(name)
        plain = {key: value for key, value in attrs.items() if _SEPARATOR not in key}
        node = Element(ns, local, plain)
        if stack:
            stack[-1].children.append(node)
        else:
            roots.append(node)
        stack.append(node)

    def end(_name: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if stack:
            stack[-1].text += data
        elif data.strip():
            raise XMLRefused("not-well-formed", "text outside the element")

    def doctype(*_args: object) -> None:
        refuse("a document type declaration")

    def entity_decl(*_args: object) -> None:
        refuse("an entity declaration")

    def external_entity(*_args: object) -> int:
        refuse("an external entity")
        return 0

    def skipped_entity(*_args: object) -> None:
        refuse("an entity reference")

    def processing_instruction(*_args: object) -> None:
        refuse("a processing instruction")

    def comment(*_args: object) -> None:
        refuse("a comment")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity_decl
    parser.UnparsedEntityDeclHandler = entity_decl
    parser.NotationDeclHandler = entity_decl
    parser.ExternalEntityRefHandler = external_entity
    parser.SkippedEntityHandler = skipped_entity
    parser.ProcessingInstructionHandler = processing_instruction
    parser.CommentHandler = comment
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise XMLRefused("not-well-formed", f"not well-formed XML: {exc}") from None
    if len(roots) != 1:
        raise XMLRefused("not-well-formed", "a frame must hold exactly one element")
    return roots[0]


def element(
    name: str,
    attrs: dict[str, str] | None = None,
    *children: str,
    text: str | None = None,
) -> str:
    """Serialize one element: attributes quoted, ``text`` escaped, ``children`` already XML."""
    parts = [f"<{name}"]
    for key, value in (attrs or {}).items():
        parts.append(f" {key}={quoteattr(value)}")
    body = "".join(children) + (escape(text) if text is not None else "")
    if not body:
        parts.append("/>")
        return "".join(parts)
    parts.append(f">{body}</{name}>")
    return "".join(parts)
