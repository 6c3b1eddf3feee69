"""E1381 frames: checksums, splitting, and the streaming decoder."""

from __future__ import annotations

from nidaan.integration.astm.framing import (
    ACK,
    ENQ,
    EOT,
    ETB,
    ETX,
    NAK,
    STX,
    EventKind,
    FrameDecoder,
    FrameStatus,
    build_frames,
    checksum,
    make_frame,
)

# Roche e411 order record (e411 p.51, quoted in shared/specs/hl7-astm.md §3.1).
E411_ORDER = "O|1|000004|40^0^5^^S1^SC|^^^10^\\^^^30^2\\^^^40^|R||||||A||||1||||||||||O"


def test_checksum_known_answers() -> None:
    # Hand-computed: '1'+'L'+'|'+'1'+'|'+'N'+CR+ETX = 0x204 -> 0x04.
    assert make_frame(1, b"L|1|N\r", final=True) == b"\x021L|1|N\r\x0304\r\n"
    assert checksum(b"1L|1|N\r\x03") == b"04"
    # Known answers recomputed independently of the implementation (sum mod 256, upper hex).
    assert checksum(b"3" + E411_ORDER.encode() + b"\r\x03") == b"49"
    assert checksum(b"7H|\\^&\r\x17") == b"FF"
    assert checksum(b"") == b"00"
    assert checksum(bytes([0xFF, 0x02])) == b"01"  # wraps modulo 256


def test_lower_case_checksum_is_accepted() -> None:
    frame = make_frame(1, b"L|1|N\r", final=True)
    lower = frame.replace(b"\x03" + frame[-4:-2], b"\x03" + frame[-4:-2].lower())
    (event,) = FrameDecoder().feed(lower)
    assert event.frame is not None
    assert event.frame.status == FrameStatus.OK


def test_long_record_is_split_and_frame_numbers_cycle() -> None:
    records = ["H|\\^&", "M|1|" + "x" * 600, *[f"R|{i}|^^^{i}|1" for i in range(1, 8)], "L|1|N"]
    frames = build_frames(records)
    assert [f[1] - 0x30 for f in frames] == [1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4]
    assert [f[-5] for f in frames[1:4]] == [ETB, ETB, ETX]
    assert all(len(f) <= 247 for f in frames)
    assert len(frames[1]) == 247
    decoded = [r for e in FrameDecoder().feed(b"".join(frames)) for r in e.records]
    assert decoded == records


def test_decoder_control_bytes_and_garbage() -> None:
    d = FrameDecoder()
    events = d.feed(bytes([ENQ, ACK, 0x41, NAK, 0x0D, 0x0A, EOT]))
    assert [e.kind for e in events] == [EventKind.ENQ, EventKind.ACK, EventKind.NAK, EventKind.EOT]
    assert d.garbage_bytes == 1


def test_decoder_validates_each_frame() -> None:
    f1, f2 = build_frames(["H|\\^&", "L|1|N"])
    d = FrameDecoder()
    bad = f1[:-4] + b"00\r\n"
    assert d.feed(bad)[0].frame.status == FrameStatus.BAD_CHECKSUM  # type: ignore[union-attr]
    assert d.feed(f2)[0].frame.status == FrameStatus.BAD_NUMBER  # type: ignore[union-attr]
    ok = d.feed(f1)[0]
    assert ok.frame.status == FrameStatus.OK
    assert ok.records == ("H|\\^&",)
    dup = d.feed(f1)[0]
    assert dup.frame.status == FrameStatus.DUPLICATE
    assert dup.records == ()
    assert d.feed(f2)[0].records == ("L|1|N",)


def test_decoder_too_long_and_cut_frames() -> None:
    d = FrameDecoder()
    long = bytes([STX]) + b"1" + b"y" * 300 + bytes([ETX]) + b"00\r\n"
    events = d.feed(long + bytes([ENQ]))
    assert [e.kind for e in events] == [EventKind.FRAME, EventKind.ENQ]
    assert events[0].frame.status == FrameStatus.TOO_LONG  # type: ignore[union-attr]
    cut = bytes([STX]) + b"1H|\\^" + bytes([EOT])
    events = d.feed(cut)
    assert events[0].frame.status == FrameStatus.MALFORMED  # type: ignore[union-attr]
    assert events[1].kind == EventKind.EOT


def test_wrap_seven_to_one_option() -> None:
    frames = build_frames([f"R|{i}" for i in range(1, 9)])
    renumbered = [*frames[:7], make_frame(1, b"R|8\r", True)]
    strict = [e.frame.status for e in FrameDecoder().feed(b"".join(renumbered))]  # type: ignore[union-attr]
    assert strict[-1] == FrameStatus.BAD_NUMBER
    lenient = FrameDecoder(allow_wrap_to_one=True).feed(b"".join(renumbered))
    assert lenient[-1].records == ("R|8",)


def test_cobas_c111_style_etb_per_record() -> None:
    # c111 ends every record with CR ETB and only the L frame with CR ETX.
    frames = [
        make_frame(1, b"H|\\^&|||c111^Roche\r", final=False),
        make_frame(2, b"R|1|^^^687|28.6|U/L\r", final=False),
        make_frame(3, b"L|1\r", final=True),
    ]
    d = FrameDecoder()
    records = [r for b in b"".join(frames) for e in d.feed(bytes([b])) for r in e.records]
    assert records == ["H|\\^&|||c111^Roche", "R|1|^^^687|28.6|U/L", "L|1"]
    assert not d.has_partial_record
