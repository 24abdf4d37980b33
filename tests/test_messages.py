"""The wire: frames survive any split into pieces, and big ones are joined once."""

from __future__ import annotations

from minipool._messages import HEADER, FrameReader


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), kind) + payload


def test_frames_reassemble_from_any_split() -> None:
    """Three frames, cut at every pair of positions, come out whole and in order."""
    frames = [(1, b"first"), (11, b""), (12, b"x" * 40)]
    stream = b"".join(frame(kind, payload) for kind, payload in frames)
    for cut in range(len(stream) + 1):
        for second in range(cut, len(stream) + 1, 7):
            reader = FrameReader()
            got = []
            for piece in (stream[:cut], stream[cut:second], stream[second:]):
                got += [(kind, bytes(payload)) for kind, payload in reader.feed(piece)]
            assert got == frames, (cut, second)


def test_a_big_frame_in_small_pieces() -> None:
    """A 4 MiB frame fed 64 KiB at a time appears once, after its last piece, intact."""
    payload = bytes(range(256)) * (4 << 12)
    stream = frame(11, payload) + frame(12, b"next")
    reader = FrameReader()
    got = []
    step = 64 << 10
    for start in range(0, len(stream), step):
        got += [(kind, bytes(data)) for kind, data in reader.feed(stream[start : start + step])]
    assert got == [(11, payload), (12, b"next")]
