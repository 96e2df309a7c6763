"""The one rule for subject ids, shared by the CLI, the Python API and the REST service.

A subject id names a person in a gallery and travels in URLs (``/v1/subjects/{id}``), shell
arguments, logs and the page. So it must be addressable everywhere and look like what it is:

* Unicode NFC-normalised (an "é" typed composed or decomposed is one subject);
* 1 to 256 characters, not blank, no leading or trailing space;
* no control, format, surrogate, private-use, unassigned or line/paragraph-separator characters
  (zero-width spaces and right-to-left overrides make two ids look alike, or one look like another);
* no ``/`` or ``\\`` (a path separator cannot travel in one URL segment), and not ``.`` or ``..``
  (clients and proxies resolve them away, so the id could never be addressed again).

:func:`subject_id` checks a new id (enroll); :func:`lookup_id` only normalises one that may have been
stored before the rule existed, so it can still be found and deleted.
"""

from __future__ import annotations

import unicodedata

from ..errors import DataError

MAX_LENGTH = 256
REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "a format character (zero-width, bidirectional override)",
    "Cs": "a surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
PATH_CHARACTERS = {"/", "\\"}
RULE = "1-256 characters, no control, format or path characters, not blank, . or .."


class SubjectIdError(DataError):
    """A subject id that breaks the rule; the message says which character and why."""


def lookup_id(text: str) -> str:
    """An id to look up (or delete): NFC-normalised, nothing refused beyond what cannot be text."""
    if not isinstance(text, str):
        raise SubjectIdError(f"a subject id is text, got {type(text).__name__}")
    return unicodedata.normalize("NFC", text)


def subject_id(text: str) -> str:
    """The normalised id of a new subject, or :class:`SubjectIdError` saying what is wrong."""
    normal = lookup_id(text)
    if not normal.strip():
        raise SubjectIdError(f"a subject id cannot be blank ({RULE})")
    if len(normal) > MAX_LENGTH:
        raise SubjectIdError(f"a subject id has at most {MAX_LENGTH} characters, got {len(normal)}")
    if normal in (".", ".."):
        raise SubjectIdError(f"{normal!r} cannot be a subject id: URLs resolve it away ({RULE})")
    if normal != normal.strip():
        raise SubjectIdError(f"a subject id cannot start or end with a space: {normal!r}")
    for position, character in enumerate(normal):
        category = unicodedata.category(character)
        if category in REFUSED_CATEGORIES or character in PATH_CHARACTERS:
            what = REFUSED_CATEGORIES.get(category, "a path separator")
            raise SubjectIdError(
                f"a subject id cannot hold {what}: U+{ord(character):04X} at position {position + 1} of "
                f"{normal.encode('ascii', 'backslashreplace').decode()!r} ({RULE})"
            )
    return normal
