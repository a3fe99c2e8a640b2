"""File rules both packages use: whole writes, a file's SHA-256, paths the OS takes.

Here, not in `tune`, because `trainables` imports nothing of `tune` (it runs on Ray's workers
alone); `tune` imports these from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

CHUNK = 1 << 20  # bytes read at a time while hashing or copying
NAME_MAX = 255  # bytes in one path component (Linux and its common filesystems)
PATH_MAX = 4096  # bytes in a whole path, its terminating NUL included (Linux)


@contextlib.contextmanager
def replaced_atomically(path: str, mode: int = 0o644) -> Iterator[str]:
    """A fresh temporary file beside `path` (its name yielded) that replaces `path` when the
    block ends cleanly. Readers see the old file or the new one, never part of one; on any
    error (a full disk, Ctrl-C) the temporary goes and `path` stays as it was.

    `mode`: the new file's permissions. The temporary is owner-only from its creation (as
    `mkstemp` makes it) and gets `mode` only once written, so 0o600 never exposes a secret.
    """
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], binary: bool = False, mode: int = 0o644, durable: bool = False
) -> Iterator[IO[Any]]:
    """Open `path` for writing as `replaced_atomically` does: all or nothing.

    `durable`: fsync before the replace, for files other processes read back after a crash
    (a dataset cache), not for state that is rewritten every few seconds.
    """
    with replaced_atomically(os.fspath(path), mode) as tmp:
        with open(tmp, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())


def sha256_of(f: IO[bytes]) -> str:
    """The hex SHA-256 of an open binary file from where it stands, read in chunks (the bytes
    are never all in memory)."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: f.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str) -> str:
    """The hex SHA-256 of the file at `path`."""
    with open(path, "rb") as f:
        return sha256_of(f)


def path_problem(value: str, uri: bool = False) -> str | None:
    """Why the OS would refuse `value` as a path (a NUL byte, a character the filesystem
    encoding cannot write, an over-long component or path), or None when it would take it.

    Checked where a config is read, so such a value is a one-line error before anything starts
    rather than a ValueError or ENAMETOOLONG deep inside a search. `uri`: a storage URI
    (s3://...), whose length rules are the store's: only the characters are checked.
    """
    if "\x00" in value:
        return "holds a NUL byte; allowed: a path without NUL bytes"
    try:
        raw = os.fsencode(value)
    except UnicodeEncodeError as err:
        return (
            f"holds {value[err.start]!r}, which the filesystem encoding cannot write; "
            "allowed: characters it can"
        )
    if uri:
        return None
    if len(raw) >= PATH_MAX:
        return f"is {len(raw)} bytes long; allowed: a path under {PATH_MAX} bytes"
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        return (
            f"has a component of {len(longest)} bytes; allowed: at most {NAME_MAX} bytes "
            "between slashes"
        )
    return None


def shorten(value: str, most: int = 80) -> str:
    """`value` cut in the middle to at most about `most` characters: for error lines."""
    return value if len(value) <= most else f"{value[: most // 2]}...{value[-most // 4 :]}"
