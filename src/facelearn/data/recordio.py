"""MXNet RecordIO (``train.rec`` + ``train.idx``) as insightface lays it out, without mxnet.

Record framing (dmlc-core): ``uint32 magic 0xced7230a``, ``uint32 lrec`` (upper 3 bits: part
flag, lower 29 bits: length), the payload, zero padding to 4 bytes. A payload that contains the
magic word at a 4-byte boundary is split into parts (flag 1 = first, 2 = middle, 3 = last) and
the magic is re-inserted between them on reading. ``train.idx`` holds ``key<TAB>offset`` lines.

Image payload (``mx.recordio.pack``): header ``<IfQQ`` = (flag, label, id, id2), then ``flag``
float32 labels when ``flag > 0``, then the encoded image. insightface's record 0 is a header
record whose label is ``(first identity record, end)``: images are records ``1 … label[0]−1``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import DataError
from .images import decode_image

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_HEADER = struct.Struct("<IfQQ")


def _lrec(flag: int, length: int) -> bytes:
    return struct.pack("<I", (flag << 29) | length)


def frame_record(payload: bytes) -> bytes:
    """One payload → its bytes in the .rec file (split around embedded magic words)."""
    parts, start = [], 0
    for i in range(0, len(payload) - len(payload) % 4, 4):
        if payload[i : i + 4] == _MAGIC_BYTES:
            parts.append(_MAGIC_BYTES + _lrec(1 if start == 0 else 2, i - start) + payload[start:i])
            start = i + 4
    tail = payload[start:]
    parts.append(_MAGIC_BYTES + _lrec(3 if start else 0, len(tail)) + tail + b"\0" * (-len(payload) % 4))
    return b"".join(parts)


def pack(label: float | list[float], payload: bytes, record_id: int = 0, id2: int = 0) -> bytes:
    """``mx.recordio.pack``: a scalar label goes in the header, a list after it (flag = its length)."""
    if isinstance(label, (list, tuple, np.ndarray)):
        labels = np.asarray(label, np.float32)
        return _HEADER.pack(len(labels), 0.0, record_id, id2) + labels.tobytes() + payload
    return _HEADER.pack(0, float(label), record_id, id2) + payload


def unpack(record: bytes) -> tuple[int, float | np.ndarray, bytes]:
    """Inverse of :func:`pack`: (flag, label or label array, payload)."""
    flag, label, _, _ = _HEADER.unpack_from(record)
    body = record[_HEADER.size :]
    if flag > 0:
        return flag, np.frombuffer(body[: 4 * flag], np.float32).copy(), body[4 * flag :]
    return flag, label, body


class RecordReader:
    """Random access to an indexed .rec file."""

    def __init__(self, rec_path: str | Path, idx_path: str | Path | None = None):
        self.rec_path = Path(rec_path)
        idx_path = Path(idx_path) if idx_path else self.rec_path.with_suffix(".idx")
        for path in (self.rec_path, idx_path):
            if not path.is_file():
                raise DataError(f"{path} not found: a RecordIO dataset needs train.rec and train.idx")
        self.offsets: dict[int, int] = {}
        for line in idx_path.read_text().splitlines():
            if line.strip():
                key, offset = line.split("\t")
                self.offsets[int(key)] = int(offset)
        self._file, self._opened_by = None, None

    def read(self, key: int) -> bytes:
        # opened lazily and once per process: data-loader workers forked after the main process read a record
        # would otherwise share its file offset, and two of them seeking at once read each other's records
        if self._file is None or self._opened_by != os.getpid():
            self._file, self._opened_by = open(self.rec_path, "rb"), os.getpid()  # noqa: SIM115
        self._file.seek(self.offsets[key])
        payload = b""
        while True:
            magic, lrec = struct.unpack("<II", self._file.read(8))
            if magic != MAGIC:
                raise DataError(f"{self.rec_path}: bad magic at record {key}; the file is corrupt")
            flag, length = lrec >> 29, lrec & ((1 << 29) - 1)
            payload += self._file.read(length)
            if flag in (0, 3):
                self._file.read(-length % 4)
                return payload
            payload += _MAGIC_BYTES

    def __getstate__(self):
        return {**self.__dict__, "_file": None}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_recordio(prefix: str | Path, samples: Iterable[tuple[int, bytes]], num_classes: int | None = None) -> None:
    """Write ``prefix.rec``/``prefix.idx`` in insightface's layout from (label, encoded image)
    pairs grouped by label: header record 0, image records 1…N, one record per identity."""
    samples = list(samples)
    labels = [label for label, _ in samples]
    if labels != sorted(labels):
        raise DataError("write_recordio needs samples grouped by label (sorted by label)")
    num_classes = num_classes if num_classes is not None else (max(labels) + 1 if labels else 0)
    n = len(samples)
    records: list[tuple[int, bytes]] = [(0, pack([n + 1, n + 1 + num_classes], b""))]
    records += [(i + 1, pack(label, payload, i + 1)) for i, (label, payload) in enumerate(samples)]
    bounds = np.searchsorted(np.asarray(labels), np.arange(num_classes + 1)) + 1
    records += [(n + 1 + c, pack([bounds[c], bounds[c + 1]], b"", n + 1 + c)) for c in range(num_classes)]
    prefix = Path(prefix)
    offset = 0
    with open(prefix.with_suffix(".rec"), "wb") as rec, open(prefix.with_suffix(".idx"), "w") as idx:
        for key, payload in records:
            framed = frame_record(payload)
            rec.write(framed)
            idx.write(f"{key}\t{offset}\n")
            offset += len(framed)


class RecordDataset:
    """Images of an insightface ``train.rec``; label = the header label (first entry of an array)."""

    def __init__(self, root: str | Path):
        root = Path(root)
        self.reader = RecordReader(root / "train.rec", root / "train.idx")
        flag, label, _ = unpack(self.reader.read(0))
        if flag > 0:
            self.keys = list(range(1, int(label[0])))
            self._num_classes = int(label[1] - label[0])
        else:
            self.keys = sorted(self.reader.offsets)
            self._num_classes = None
        self.labels = [self._label_of(key) for key in self.keys] if self._num_classes is None else None
        if not self.keys:
            raise DataError(f"{root}/train.rec holds no image records")

    def _label_of(self, key: int) -> int:
        _, label, _ = unpack(self.reader.read(key))
        return int(label if np.isscalar(label) else label[0])

    @property
    def num_classes(self) -> int:
        if self._num_classes is None:
            self._num_classes = max(self.labels) + 1
        return self._num_classes

    def __len__(self) -> int:
        return len(self.keys)

    def label(self, index: int) -> int:
        return self.labels[index] if self.labels is not None else self._label_of(self.keys[index])

    def image(self, index: int) -> np.ndarray:
        _, _, payload = unpack(self.reader.read(self.keys[index]))
        return decode_image(payload, f"{self.reader.rec_path} record {self.keys[index]}")
