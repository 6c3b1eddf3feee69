"""Property: build -> frame -> split the bytes anywhere -> decode -> parse is lossless."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nidaan.integration.astm.framing import ETB, FrameDecoder, FrameStatus, build_frames
from nidaan.integration.astm.records import Delimiters, Record, parse_message

DELIMITER_SETS = [
    Delimiters(),
    Delimiters("|", "\\", "!", "~"),  # Beckman DxH
    Delimiters("|", "@", "^", "\\"),  # GeneXpert
    Delimiters("|", "`", "^", "&"),  # Erba XL
]

# Latin-1 text that includes every delimiter of every set, CR/LF and other control bytes.
ALPHABET = st.one_of(
    st.sampled_from([*list("|\\^&!~@`;#:%"), "\r", "\n", "\x02", "\x03", "\x04", "\x17", "\x7f"]),
    st.characters(min_codepoint=0, max_codepoint=0xFF),
)
texts = st.one_of(st.text(ALPHABET, max_size=12), st.text(ALPHABET, min_size=120, max_size=300))
components = st.lists(texts, min_size=1, max_size=3).map(tuple)
fields = st.lists(components, min_size=1, max_size=3).map(tuple)
body_records = st.builds(
    Record,
    st.sampled_from(list("POCRQMS")),
    st.lists(fields, max_size=5).map(tuple),
)


@st.composite
def messages(draw: st.DrawFn) -> tuple[Delimiters, list[Record]]:
    delims = draw(st.sampled_from(DELIMITER_SETS))
    header = Record("H", draw(st.lists(fields, max_size=4).map(tuple)))
    body = draw(st.lists(body_records, max_size=6))
    terminator = Record("L", draw(st.lists(fields, max_size=2).map(tuple)))
    return delims, [header, *body, terminator]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=messages(), cuts=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=40))
def test_message_survives_framing_and_arbitrary_chunking(
    msg: tuple[Delimiters, list[Record]], cuts: list[int]
) -> None:
    delims, records = msg
    lines = [r.encode(delims) for r in records]
    frames = build_frames(lines)
    assert all(len(f) <= 247 for f in frames)
    if any(f[-5] == ETB for f in frames):
        event("record split over several frames")
    stream = b"".join(frames)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    decoded: list[str] = []
    for a, b in itertools.pairwise(points):
        for ev in decoder.feed(stream[a:b]):
            assert ev.frame is not None
            assert ev.frame.status == FrameStatus.OK
            decoded.extend(ev.records)
    assert decoded == lines
    assert not decoder.has_partial_record
    parsed = parse_message(decoded)
    assert parsed.delimiters == delims
    assert parsed.records == records
