"""One start of a search, undone when it fails before its first trial.

A start that ends in exit 2 or 3 before any trial (an unusable store, an unreachable server,
bad data, resources) removes what it created: the experiment folder, the saved config, the
state and lock files, and any parent folder it made. What existed before stays as it was, so
the same command, corrected, runs. `--overwrite` moves the old experiment aside instead of
deleting it: it is removed only once the new start has passed its checks (`commit`), and put
back when the start fails.
"""

from __future__ import annotations

import os
import shutil

from tune.lock import LOCK_FILE, OWNER_FILE

# An overwritten experiment, kept inside its folder until the new start has passed its checks.
ASIDE = ".cnn_tune_replaced"
_KEPT = (LOCK_FILE, OWNER_FILE, ASIDE)  # what the lock owns, and the set-aside experiment


def _missing_folders(folder: str) -> list[str]:
    """`folder` and its ancestors that do not exist yet, the deepest first."""
    missing = []
    path = os.path.abspath(folder)
    while not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


class StartAttempt:
    """What one start of a search created in its state folder, so that a failed start can
    take exactly that back.

    Walk: made before the lock (`StartAttempt(folder)` notes what is there), `set_aside` under
    the lock for `--overwrite`, `commit` once the start has passed its checks, else `undo`
    under the lock and `remove_lock_files` after it is released.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.created = _missing_folders(folder)
        self.before = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        self.committed = False
        self.undone = False

    @property
    def aside(self) -> str:
        return os.path.join(self.folder, ASIDE)

    def set_aside(self) -> None:
        """--overwrite: move the old experiment (Ray's state, run map, saved config) aside."""
        if os.path.lexists(self.aside):  # left by an overwrite whose driver was killed
            _remove(self.aside)
        os.mkdir(self.aside)
        for entry in os.listdir(self.folder):
            if entry not in _KEPT:
                os.rename(os.path.join(self.folder, entry), os.path.join(self.aside, entry))

    def commit(self) -> None:
        """The start has passed its checks: the experiment it replaces (if any) goes now."""
        self.committed = True
        if os.path.lexists(self.aside):
            _remove(self.aside)

    def undo(self) -> None:
        """The start failed: remove what it created and put a set-aside experiment back.

        Runs under the lock; the lock files themselves go in `remove_lock_files`.
        """
        self.undone = True
        if not os.path.isdir(self.folder):
            return
        for entry in os.listdir(self.folder):
            if entry not in _KEPT and entry not in self.before:
                _remove(os.path.join(self.folder, entry))
        if os.path.isdir(self.aside):
            for entry in os.listdir(self.aside):
                target = os.path.join(self.folder, entry)
                _remove(target)  # the failed start's file of the same name (its config)
                os.rename(os.path.join(self.aside, entry), target)
            os.rmdir(self.aside)

    def remove_lock_files(self) -> None:
        """After an undo, once the lock is released: the lock files this start made, then the
        folders it made, as far as they are empty (another start may be in them by now)."""
        if not self.undone:
            return
        for entry in (LOCK_FILE, OWNER_FILE):
            if entry not in self.before:
                try:
                    os.remove(os.path.join(self.folder, entry))
                except FileNotFoundError:
                    pass
        for path in self.created:
            try:
                os.rmdir(path)
            except OSError:
                break  # not empty: no longer only ours
