"""Files written whole or not at all, and a file's SHA-256: the two file rules both packages use.

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
