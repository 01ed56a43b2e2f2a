"""Server-side WebSocket text frames, built once for many connections.

An unmasked, final text frame (what a server sends, RFC 6455 section 5.2)
is the same bytes for every client that gets it: the broadcaster builds it
once per event (``framed``) and osism.ws_protocol's FanoutProtocol writes it
as it is.
"""

import struct
from typing import List

__all__ = ["FramedText", "framed", "text_frame_parts"]

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
    payload), built once by ``framed`` for all the connections it goes to.
    It is a str like any other to everything but FanoutProtocol."""

    frame: bytes


def framed(text: str) -> FramedText:
    """``text`` with its frame built (see FramedText)."""
    result = FramedText(text)
    parts: List[bytes] = []
    text_frame_parts(text, parts)
    result.frame = b"".join(parts)
    return result
