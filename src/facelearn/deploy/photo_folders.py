"""Which photos a command was given: files, a folder of one subject's photos, or a tree of subject folders.

    facelearn enroll people.db alice a1.jpg a2.jpg      # files
    facelearn enroll people.db alice alice/             # a folder: one subject
    facelearn enroll people.db people/                  # a tree: one subject per subfolder

Every path is checked before a model loads: one that does not exist, a folder where a photo is
expected, or something that is not a regular file (a FIFO would block a read) is an error naming
it. Inside folders only files with an image extension are taken (others are counted, not read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data.images import IMAGE_EXTENSIONS
from ..errors import DataError


@dataclass
class Subjects:
    """Each subject's photos, in order, and the files of the folders that are not images."""

    photos: dict[str, list[Path]]
    not_images: list[Path] = field(default_factory=list)
    from_folders: bool = False  # taken from folders (so a photo that cannot be decoded is reported, not fatal)
    tree: bool = False  # one subject per subfolder


def check_photo(path: str | Path) -> Path:
    """``path`` as a regular file, or an error that says what it is instead."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.is_dir():
        raise DataError(f"{path} is a folder where a photo is expected: give the path of one photo")
    if not path.is_file():
        raise DataError(f"{path} is not a regular file (a pipe or a device?): give the path of a photo")
    return path


def folder_photos(folder: Path) -> tuple[list[Path], list[Path]]:
    """(the images directly in ``folder``, its other regular files), each sorted by name."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS], [
        p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS
    ]


def one_subject(subject: str, paths: list[str]) -> Subjects:
    """Photos and folders of photos, all of one subject."""
    photos, not_images, from_folders = [], [], False
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found, others = folder_photos(path)
            if not found:
                tree = any(p.is_dir() for p in path.iterdir())
                hint = f": a folder of subject folders is enrolled without SUBJECT ({path} alone)" if tree else ""
                raise DataError(f"{path} holds no photos ({', '.join(sorted(IMAGE_EXTENSIONS))}){hint}")
            photos += found
            not_images += others
            from_folders = True
        else:
            photos.append(check_photo(path))
    return Subjects({subject: photos}, not_images, from_folders)


def subject_tree(root: str | Path) -> Subjects:
    """``root/<subject>/<photo>``: one subject per subfolder (its name is the subject)."""
    root = Path(root)
    photos, not_images = {}, []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found, others = folder_photos(folder)
        not_images += others
        if found:
            photos[folder.name] = found
    if not photos:
        loose, _ = folder_photos(root)
        hint = (
            f"; it holds photos: to enroll them as one subject, name it (facelearn enroll GALLERY SUBJECT {root})"
            if loose
            else ""
        )
        raise DataError(f"{root} holds no subject folders with photos (<folder>/<subject>/<photo>){hint}")
    return Subjects(photos, not_images, from_folders=True, tree=True)
