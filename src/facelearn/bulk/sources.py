"""PHOTOS for the bulk pipeline: a folder tree, a text file of paths, or a Parquet of paths → keyed photos.

    list_photos("raw/")               # every file under raw/ (hidden ones aside), key: its relative path
    list_photos("paths.txt")          # one path a line; a relative path is relative to the list's folder
    list_photos("paths.parquet")      # a "path" column; optional "key" and "subject" columns
    list_photos("s3://bucket/raw/")   # any filesystem pyarrow opens by URI (for the Ray engine)

A photo's key names it in every output (the Parquet rows, the report, a rerun's skip list): its path
relative to the folder, the line of the list, or the Parquet's ``key``. Its subject is the name of the
folder that holds it, unless the Parquet has a ``subject`` column. Keys must be unique. The list is
read once, by the driver; a listed file that is missing is not an error here: the pipeline reports it.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import DataError

PARQUET_COLUMNS = ("path", "key", "subject")  # path required


@dataclass(frozen=True)
class Photo:
    key: str
    path: str  # a local path or a URI
    subject: str


class PhotoError(Exception):
    """One photo that cannot be read: ``status`` is missing or too_large; the run goes on."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


@functools.lru_cache(maxsize=8)
def _filesystem(root: str):
    from pyarrow import fs

    return fs.FileSystem.from_uri(root)[0]


def filesystem(location: str | Path):
    """(pyarrow filesystem, path inside it) for a local path or a URI; one client per bucket and process."""
    from pyarrow import fs

    location = str(location)
    if not is_uri(location):
        return fs.LocalFileSystem(), os.path.abspath(location)
    scheme, rest = location.split("://", 1)
    if scheme == "file":
        return fs.LocalFileSystem(), "/" + rest.lstrip("/")
    return _filesystem(f"{scheme}://{rest.split('/', 1)[0]}"), fs.FileSystem.from_uri(location)[1]


def join(root: str, relative: str) -> str:
    return f"{root.rstrip('/')}/{relative}" if is_uri(root) else str(Path(root) / relative)


def subject_of(key: str) -> str:
    return PurePosixPath(key.replace("\\", "/")).parent.name


def read_photo(path: str, max_bytes: int) -> bytes:
    """The file's bytes; :class:`PhotoError` (missing, too_large) instead of an exception that stops the run."""
    from pyarrow import fs as pafs

    try:
        if not is_uri(path):
            size = os.path.getsize(path)
            if size > max_bytes:
                raise PhotoError("too_large", f"{path}: {size:,} bytes, more than the limit of {max_bytes:,}")
            return Path(path).read_bytes()
        system, inner = filesystem(path)
        info = system.get_file_info(inner)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(path)
        if info.size is not None and info.size > max_bytes:
            raise PhotoError("too_large", f"{path}: {info.size:,} bytes, more than the limit of {max_bytes:,}")
        with system.open_input_stream(inner) as stream:
            return stream.read()
    except (FileNotFoundError, NotADirectoryError):
        raise PhotoError("missing", f"{path}: no such file") from None


def list_photos(photos: str | Path) -> list[Photo]:
    """The photos PHOTOS names, sorted by key for a folder, in the listed order otherwise."""
    from pyarrow import fs as pafs

    system, inner = filesystem(photos)
    info = system.get_file_info(inner)
    if info.type == pafs.FileType.NotFound:
        raise DataError(f"{photos} does not exist: give a folder of photos, a text file of paths or a Parquet of paths")
    if info.type == pafs.FileType.Directory:
        listed = _folder(system, inner, str(photos))
    elif str(photos).endswith(".parquet"):
        listed = _parquet(system, inner, str(photos))
    else:
        listed = _text(system, inner, str(photos))
    if not listed:
        raise DataError(f"{photos} names no photos")
    seen: set[str] = set()
    for photo in listed:
        if photo.key in seen:
            raise DataError(f"{photos} names the photo key {photo.key!r} twice: each photo is keyed once in the output")
        seen.add(photo.key)
    return listed


def _folder(system, inner: str, photos: str) -> list[Photo]:
    from pyarrow import fs as pafs

    found = system.get_file_info(pafs.FileSelector(inner, recursive=True))
    listed = []
    for info in found:
        relative = PurePosixPath(info.path).relative_to(PurePosixPath(inner)).as_posix()
        if info.type != pafs.FileType.File or any(part.startswith(".") for part in relative.split("/")):
            continue
        listed.append(Photo(relative, join(photos, relative), subject_of(relative)))
    return sorted(listed, key=lambda photo: photo.key)


def _text(system, inner: str, photos: str) -> list[Photo]:
    with system.open_input_stream(inner) as stream:
        try:
            lines = stream.read().decode().splitlines()
        except UnicodeDecodeError:
            raise DataError(f"{photos} is not a text file of paths (one a line), a folder or a .parquet") from None
    base = photos.rsplit("/", 1)[0] if is_uri(photos) else str(Path(photos).parent)
    listed = []
    for line in lines:
        if not line.strip():
            continue
        path = line if is_uri(line) or os.path.isabs(line) else join(base, line)
        listed.append(Photo(line, path, subject_of(line)))
    return listed


def _parquet(system, inner: str, photos: str) -> list[Photo]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(inner, filesystem=system)
    except Exception as error:  # pyarrow's errors name no common type
        raise DataError(f"{photos} is not a readable Parquet file ({error})") from None
    columns = table.column_names
    if "path" not in columns:
        raise DataError(
            f"{photos} has the columns {', '.join(columns) or '(none)'}; a Parquet of photos needs a 'path' column "
            "(and may have 'key' and 'subject')"
        )
    wanted = [c for c in PARQUET_COLUMNS if c in columns]
    rows = table.select(wanted).to_pylist()
    if any(not row["path"] for row in rows):
        raise DataError(f"{photos}: the 'path' column has empty values")
    base = photos.rsplit("/", 1)[0] if is_uri(photos) else str(Path(photos).parent)
    listed = []
    for row in rows:
        path, key = row["path"], str(row.get("key") or row["path"])
        full = path if is_uri(path) or os.path.isabs(path) else join(base, path)
        listed.append(Photo(key, full, str(row["subject"]) if row.get("subject") is not None else subject_of(key)))
    return listed
