"""Server text frames, byte for byte as RFC 6455 section 5.2 lays them out.

The expected bytes are written out here from the RFC, not built with
osism.transport.frames or websockets: FIN and opcode 1 (0x81), then the payload
length in 7 bits (below 126), or 126 and 16 bits (below 65536), or 127 and
64 bits, in network byte order; no mask (a server's frame); the UTF-8 payload.
"""

from typing import List

import pytest

from osism.transport.frames import (
    Bundle,
    FramedText,
    bundle_of,
    framed,
    text_frame_parts,
    texts_of,
)


def frame_of(text: str) -> bytes:
    parts: List[bytes] = []
    text_frame_parts(text, parts)
    return b"".join(parts)


class TestTextFrameParts:
    def test_rfc_example_a_single_frame_unmasked_text_message(self) -> None:
        # RFC 6455 section 5.7: "0x81 0x05 0x48 0x65 0x6c 0x6c 0x6f".
        assert frame_of("Hello") == bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])

    def test_appends_the_header_then_the_payload(self) -> None:
        parts: List[bytes] = [b"before"]
        text_frame_parts("ab", parts)
        assert parts == [b"before", b"\x81\x02", b"ab"]

    @pytest.mark.parametrize(
        "length, header",
        [
            (0, b"\x81\x00"),
            (1, b"\x81\x01"),
            (125, b"\x81\x7d"),
            (126, b"\x81\x7e\x00\x7e"),
            (256, b"\x81\x7e\x01\x00"),
            (65535, b"\x81\x7e\xff\xff"),
            (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
            (70000, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x11\x70"),
        ],
        ids=lambda value: str(value) if isinstance(value, int) else None,
    )
    def test_header_carries_the_payload_length_in_the_shortest_form(
        self, length: int, header: bytes
    ) -> None:
        assert frame_of("a" * length) == header + b"a" * length

    @pytest.mark.parametrize(
        "text, header",
        [
            ("é" * 62 + "a", b"\x81\x7d"),  # 125 bytes
            ("é" * 63, b"\x81\x7e\x00\x7e"),  # 63 characters, 126 bytes
            ("€" * 21845, b"\x81\x7e\xff\xff"),  # 65535 bytes
            ("é" * 32768, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        ],
        ids=["125-bytes", "126-bytes", "65535-bytes", "65536-bytes"],
    )
    def test_length_counts_utf8_bytes_not_characters(
        self, text: str, header: bytes
    ) -> None:
        assert frame_of(text) == header + text.encode("utf-8")


class TestFramed:
    def test_is_the_same_text(self) -> None:
        result = framed('{"a": 1}')
        assert isinstance(result, str)
        assert result == '{"a": 1}'

    @pytest.mark.parametrize(
        "text, frame",
        [
            ("", b"\x81\x00"),
            ("Hello", b"\x81\x05Hello"),
            ("ü", b"\x81\x02\xc3\xbc"),
            ("x" * 200, b"\x81\x7e\x00\xc8" + b"x" * 200),
        ],
        ids=["empty", "hello", "two-byte-character", "16-bit-length"],
    )
    def test_carries_its_frame(self, text: str, frame: bytes) -> None:
        assert framed(text).frame == frame

    def test_size_is_the_memory_of_the_text_and_its_frame(self) -> None:
        # 1000 ASCII characters: the str holds 1000 bytes, the frame 1004
        # (4 of header), each with an object header of less than 100 bytes.
        result = framed("x" * 1000)
        assert 2004 < result.size < 2204


def texts(*values: str) -> List[FramedText]:
    return [framed(value) for value in values]


class TestBundle:
    def test_holds_the_texts_in_order(self) -> None:
        assert Bundle(texts("a", "bc", "d")).texts == ("a", "bc", "d")

    def test_frame_is_the_frames_of_its_texts_joined(self) -> None:
        frame = Bundle(texts("ab", "cde")).frame
        assert frame == b"\x81\x02ab\x81\x03cde"

    def test_chars_is_the_length_of_the_texts_together(self) -> None:
        assert Bundle(texts("ab", "cde", "")).chars == 5

    def test_size_adds_the_joined_frames_to_the_texts_sizes(self) -> None:
        members = texts("x" * 500, "y" * 500)
        bundle = Bundle(members)
        # The joined run holds 2 * 504 bytes plus an object header.
        extra = bundle.size - members[0].size - members[1].size
        assert 1008 < extra < 1108

    def test_repr_counts_texts_and_characters(self) -> None:
        assert repr(Bundle(texts("ab", "cde"))) == "Bundle(2 texts, 5 characters)"


class TestBundleOf:
    def test_one_text_is_its_own_entry(self) -> None:
        [text] = texts("a")
        assert bundle_of([text]) is text

    def test_several_texts_are_a_bundle(self) -> None:
        entry = bundle_of(texts("a", "b"))
        assert isinstance(entry, Bundle)
        assert entry.texts == ("a", "b")


class TestTextsOf:
    def test_a_text_is_one_text(self) -> None:
        assert texts_of("a") == ("a",)

    def test_a_bundle_is_its_texts(self) -> None:
        assert texts_of(Bundle(texts("a", "b"))) == ("a", "b")
