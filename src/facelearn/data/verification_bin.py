"""insightface verification ``.bin`` files: a pickle of ``(bins, issame_list)``.

``bins`` holds 2N encoded images (bytes, or uint8 numpy arrays in some writers); pair i is
images 2i and 2i+1. A pickle can execute code, so it is read with an unpickler that builds
only lists, tuples, bytes, booleans and plain numpy arrays, and the result is checked against
that structure before use: anything else is refused and nothing is executed.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from ..errors import DataError

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): "numpy",
    ("numpy._core.multiarray", "_reconstruct"): "numpy",
    ("numpy", "ndarray"): "numpy",
    ("numpy", "dtype"): "numpy",
    ("_codecs", "encode"): "codecs",  # how Python 3 pickles bytes at protocol 2
}


class UnsafeBinError(DataError):
    """The file is not a verification .bin of the expected structure."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise UnsafeBinError(f"refused to load {module}.{name}: a verification .bin holds only images and flags")
        if module == "_codecs":
            import codecs

            return codecs.encode
        if name == "_reconstruct":
            return _reconstruct
        return getattr(np, name)


def load_verification_bin(path: str | Path) -> tuple[list[bytes], np.ndarray]:
    """(2N encoded images, N issame flags) from an insightface .bin."""
    data = Path(path).read_bytes()
    try:
        loaded = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except UnsafeBinError as error:
        raise UnsafeBinError(f"{path}: {error}") from None
    except Exception as error:
        raise UnsafeBinError(f"{path}: not a readable verification .bin ({error})") from error
    if not (isinstance(loaded, (tuple, list)) and len(loaded) == 2):
        raise UnsafeBinError(f"{path}: expected a (bins, issame_list) pair, got {type(loaded).__name__}")
    bins, issame = loaded
    if not isinstance(bins, (list, tuple)) or not all(_is_encoded(b) for b in bins):
        raise UnsafeBinError(f"{path}: bins must be a list of encoded images (bytes)")
    flags = np.asarray(issame)
    if flags.ndim != 1 or flags.dtype.kind not in "bui" or len(bins) != 2 * len(flags):
        raise UnsafeBinError(f"{path}: expected N issame flags for 2N images, got {len(flags)} for {len(bins)}")
    return [_as_bytes(b) for b in bins], flags.astype(bool)


def _is_encoded(item) -> bool:
    return isinstance(item, (bytes, bytearray)) or (isinstance(item, np.ndarray) and item.dtype == np.uint8)


def _as_bytes(item) -> bytes:
    return bytes(item) if isinstance(item, (bytes, bytearray)) else item.tobytes()


def write_verification_bin(path: str | Path, bins: list[bytes], issame: list[bool] | np.ndarray) -> None:
    flags = [bool(flag) for flag in issame]
    if len(bins) != 2 * len(flags):
        raise ValueError(f"need 2 images per pair: {len(bins)} images for {len(flags)} pairs")
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(([bytes(b) for b in bins], flags), handle, protocol=4)
    tmp.replace(path)
