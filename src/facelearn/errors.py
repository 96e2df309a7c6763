"""The errors a user can cause, as one family: the CLI prints them as one line and exits 2.

Anything else that escapes is a bug in facelearn and keeps its traceback.
"""

from __future__ import annotations


class FacelearnError(Exception):
    """A problem with the user's input, files or environment, said in words they can act on."""


class ConfigError(FacelearnError, ValueError):
    """A recipe, an override or a command-line option does not fit the schema."""


class DataError(FacelearnError, ValueError):
    """A dataset, pairs list or image folder that cannot be used as asked."""


def describe_os_error(error: OSError) -> str:
    """``cannot write runs/x/step.pt: No space left on device`` — the path and the cause, one line."""
    path = error.filename if error.filename is not None else "a file"
    other = f" -> {error.filename2}" if getattr(error, "filename2", None) else ""
    cause = error.strerror or str(error)
    if isinstance(error, (FileExistsError, NotADirectoryError)):
        cause += " (a file stands where a folder is needed)"
    return f"{path}{other}: {cause}"
