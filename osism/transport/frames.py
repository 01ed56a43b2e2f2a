"""Server-side WebSocket text frames, built once for many connections.

An unmasked, final text frame (what a server sends, RFC 6455 section 5.2)
is the same bytes for every client that gets it: the broadcaster builds it
once per event (``framed``) and the FanoutProtocol of
osism.transport.uvicorn_protocol writes it as it is. The events of one turn
of the broadcaster that go to a client travel as one ``Bundle``: one outbox
entry and one joined run of frames, which every client without filters
shares.
"""

import struct
from sys import getsizeof
from typing import List, Sequence, Union

__all__ = [
    "Bundle",
    "FramedText",
    "Item",
    "bundle_of",
    "framed",
    "text_frame_parts",
    "texts_of",
]

_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")
_FIN_TEXT = 0x81


def text_frame_parts(text: str, out: List[bytes]) -> None:
    """Append the header and payload of one unmasked, final text frame (what
    a server sends, RFC 6455 section 5.2) to ``out``."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        out.append(bytes((_FIN_TEXT, length)))
    elif length < 65536:
        out.append(_HEADER_16.pack(_FIN_TEXT, 126, length))
    else:
        out.append(_HEADER_64.pack(_FIN_TEXT, 127, length))
    out.append(payload)


class FramedText(str):
    """A text that carries its own text frame (``frame``: header and UTF-8
    payload), built once by ``framed`` for all the connections it goes to,
    and the bytes of memory the two hold (``size``). It is a str like any
    other to everything but FanoutProtocol."""

    frame: bytes
    size: int


def framed(text: str) -> FramedText:
    """``text`` with its frame built (see FramedText)."""
    result = FramedText(text)
    parts: List[bytes] = []
    text_frame_parts(text, parts)
    result.frame = b"".join(parts)
    result.size = getsizeof(result) + getsizeof(result.frame)
    return result


class Bundle:
    """Several events' texts for one client, in order, as one outbox entry.

    ``frame`` is their frames joined (built once, for every client that
    gets the same bundle); ``size`` the bytes of memory the bundle holds
    (its texts, their frames and the joined run); ``chars`` the length of
    the texts together.
    """

    __slots__ = ("texts", "frame", "size", "chars")

    def __init__(self, texts: Sequence[FramedText]) -> None:
        self.texts = tuple(texts)
        self.frame = b"".join([text.frame for text in self.texts])
        self.size = sum([text.size for text in self.texts]) + getsizeof(self.frame)
        self.chars = sum(map(len, self.texts))

    def __repr__(self) -> str:
        return f"Bundle({len(self.texts)} texts, {self.chars} characters)"


# What an outbox holds: a text (a reply, a replayed event or one event) or a
# bundle of events.
Item = Union[str, Bundle]


def bundle_of(texts: Sequence[FramedText]) -> Union[FramedText, Bundle]:
    """One entry for ``texts`` (at least one): the text itself when alone."""
    return texts[0] if len(texts) == 1 else Bundle(texts)


def texts_of(item: Item) -> Sequence[str]:
    """The texts an outbox entry carries, in order."""
    return item.texts if isinstance(item, Bundle) else (item,)
