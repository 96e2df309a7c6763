"""A JPEG's structure read without decoding it: its size, and whether its data can fill that size.

libjpeg decodes a JPEG whose entropy-coded data ends early (a marker where data should be) without
an error: it warns and fills the rest with mid-grey. A 6 KB photo whose frame header is patched to
say 9000×4000 thus decodes to 108 MB of grey. This module walks the markers and counts the bits of
each scan against a lower bound that no complete file can fall below: a Huffman code is at least
one bit, and every block of every component needs one code in the first DC scan (two in a
baseline scan: DC and end-of-block) and one bit in a DC refinement scan. A file that falls short,
has no end marker, or leaves a component without DC data is incomplete before anything is decoded.

Only the frames libjpeg and every browser decode are accepted: baseline, extended and progressive
Huffman (SOF0-SOF2). Arithmetic-coded, lossless and hierarchical JPEGs are refused as unsupported.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field

SUPPORTED_FRAMES = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive"}
OTHER_FRAMES = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
NEXT_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")  # not a stuffed 0xFF00, not a restart marker
RESTART = re.compile(rb"\xff[\xd0-\xd7]")


class JpegStructureError(ValueError):
    """The JPEG is incomplete or malformed; ``unsupported`` when it is well formed but of a kind refused."""

    def __init__(self, message: str, unsupported: bool = False):
        super().__init__(message)
        self.unsupported = unsupported


@dataclass
class JpegStructure:
    width: int
    height: int
    frame: str
    components: dict[int, tuple[int, int]] = field(default_factory=dict)  # id -> (h, v) sampling
    end: int = 0  # offset of the EOI marker that ends the last scan

    def blocks(self, component: int) -> int:
        """8×8 blocks of one component (its own size, rounded up as the decoder does)."""
        h_max = max(h for h, _ in self.components.values())
        v_max = max(v for _, v in self.components.values())
        h, v = self.components[component]
        return math.ceil(math.ceil(self.width * h / h_max) / 8) * math.ceil(math.ceil(self.height * v / v_max) / 8)


def read_jpeg_structure(data: bytes) -> JpegStructure:
    """The frame's size and sampling; raises :class:`JpegStructureError` for a file that cannot be whole."""
    if not data.startswith(b"\xff\xd8"):
        raise JpegStructureError("not a JPEG (no start-of-image marker)")
    structure: JpegStructure | None = None
    dc_seen: set[int] = set()
    position = 2
    while True:
        while position < len(data) and data[position] == 0xFF and data[position + 1 : position + 2] == b"\xff":
            position += 1  # fill bytes before a marker
        if position + 2 > len(data):
            raise JpegStructureError("the data ends before the end-of-image marker (truncated)")
        if data[position] != 0xFF:
            raise JpegStructureError(f"no marker where one must be (byte {position})")
        marker = data[position + 1]
        if marker == 0xD9:
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        if position + 4 > len(data):
            raise JpegStructureError("the data ends inside a marker segment (truncated)")
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        segment = data[position + 4 : position + 2 + length]
        if length < 2 or len(segment) != length - 2:
            raise JpegStructureError("the data ends inside a marker segment (truncated)")
        position += 2 + length
        if marker in SUPPORTED_FRAMES or marker in OTHER_FRAMES:
            structure = read_frame(marker, segment, structure)
        elif marker == 0xDA:
            if structure is None:
                raise JpegStructureError("a scan before the frame header")
            position = check_scan(structure, segment, data, position, dc_seen)
    if structure is None:
        raise JpegStructureError("no frame header (no image in the file)")
    missing = set(structure.components) - dc_seen
    if missing:
        raise JpegStructureError(f"the data ends early: component(s) {sorted(missing)} have no scan (truncated)")
    structure.end = position
    return structure


def read_frame(marker: int, segment: bytes, previous: JpegStructure | None) -> JpegStructure:
    if previous is not None:
        raise JpegStructureError("more than one frame header", unsupported=True)
    if marker not in SUPPORTED_FRAMES:
        raise JpegStructureError(
            f"an arithmetic-coded, lossless or hierarchical JPEG (SOF{marker - 0xC0}) is not supported; "
            "save it as a baseline or progressive JPEG",
            unsupported=True,
        )
    if len(segment) < 6:
        raise JpegStructureError("a frame header too short")
    _, height, width, count = struct.unpack(">BHHB", segment[:6])
    if width == 0 or height == 0 or count == 0 or len(segment) < 6 + 3 * count:
        raise JpegStructureError(f"a frame header of {width}×{height} pixels and {count} components is not decodable")
    components = {}
    for i in range(count):
        identifier, sampling, _ = segment[6 + 3 * i : 9 + 3 * i]
        h, v = sampling >> 4, sampling & 15
        if not (1 <= h <= 4 and 1 <= v <= 4):
            raise JpegStructureError(f"component {identifier} has sampling factors {h}×{v}")
        components[identifier] = (h, v)
    return JpegStructure(width, height, SUPPORTED_FRAMES[marker], components)


def check_scan(structure: JpegStructure, header: bytes, data: bytes, start: int, dc_seen: set[int]) -> int:
    """Checks one scan's entropy-coded bytes against its lower bound; returns where the next marker starts."""
    if not header or len(header) < 1 + 2 * header[0] + 3:
        raise JpegStructureError("a scan header too short")
    count = header[0]
    ids = [header[1 + 2 * i] for i in range(count)]
    spectral_start, _, approximation = header[1 + 2 * count], header[2 + 2 * count], header[3 + 2 * count]
    if any(i not in structure.components for i in ids):
        raise JpegStructureError("a scan names a component the frame does not have")
    found = NEXT_MARKER.search(data, start)
    if found is None:
        raise JpegStructureError("the data ends inside a scan, with no end-of-image marker (truncated)")
    entropy = data[start : found.start()]
    bits = 8 * (len(entropy) - entropy.count(b"\xff\x00") - 2 * len(RESTART.findall(entropy)))
    if spectral_start == 0:  # DC data: at least one bit a block (two in a baseline scan)
        per_block = 2 if structure.frame != "progressive" else 1
        needed = per_block * sum(structure.blocks(i) for i in ids)
        if bits < needed:
            raise JpegStructureError(
                f"the data ends early: the header says {structure.width}×{structure.height} pixels, "
                f"which need at least {math.ceil(needed / 8):,} bytes of image data, but the file has "
                f"{max(bits, 0) // 8:,} (truncated, or a header that lies)"
            )
        if approximation >> 4 == 0:
            dc_seen.update(ids)
    return found.start()
