"""One writer per run folder: a lock file, taken before anything is written and released at the
end, so that two runs started at once into the same folder (or a resume of a run that is still
going) cannot mix their event files, checkpoints and results.

The lock is `<run>/.lock`, created atomically (O_CREAT | O_EXCL: of two runs, exactly one
creates it) and holding the owner's PID and host. A lock whose process is gone (a run killed with
SIGKILL, a lost node on this host) is stale: it is reported and taken over. A lock from another
host cannot be checked, so it is honoured; the message says how to remove it.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
from pathlib import Path

from leo_lightning.errors import ConfigError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


def lock_path(folder: Path) -> Path:
    return Path(folder) / LOCK_NAME


def live_holder(folder: Path) -> int | None:
    """The PID of the live process that holds the folder's lock, or None. A stale lock (its
    process is gone) is reported and removed here."""
    path = lock_path(folder)
    try:
        pid_text, _, host = path.read_text().strip().partition(" ")
    except FileNotFoundError:
        return None
    pid = int(pid_text) if pid_text.isdigit() else None
    if host and host != socket.gethostname():
        return pid if pid is not None else -1  # cannot be checked from here: honoured
    if pid is not None and _alive(pid):
        return pid
    log.warning("%s: stale lock of process %s (no longer running) removed", folder, pid_text)
    path.unlink(missing_ok=True)
    return None


def acquire(folder: Path, key: str = "hydra.run.dir") -> None:
    """Take the folder's lock for this process, or refuse naming the holder. Released by
    `release`, and at exit if the process ends without it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(2):  # a second try after a stale lock was removed
        try:
            descriptor = os.open(lock_path(folder), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = live_holder(folder)
            if holder == os.getpid():  # this process's own run before (a notebook's): re-entered
                return
            if holder is not None:
                raise in_use(key, folder, holder) from None
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"{os.getpid()} {socket.gethostname()}\n")
        atexit.register(release, folder)
        return
    raise in_use(key, folder, live_holder(folder) or -1)


def release(folder: Path) -> None:
    """Remove the folder's lock if this process holds it."""
    path = lock_path(folder)
    try:
        pid_text = path.read_text().split(" ", 1)[0]
    except (FileNotFoundError, NotADirectoryError):
        return
    if pid_text == str(os.getpid()):
        path.unlink(missing_ok=True)


def in_use(key: str, folder: Path, pid: int) -> ConfigError:
    who = f"process {pid}" if pid > 0 else "a process on another host"
    return ConfigError(
        [
            f"{key}={folder} is in use by a running {who} (its lock: {lock_path(folder)}): two "
            "runs in one folder would mix their files; wait for it to end, or choose another "
            "folder (if you know that process is gone, delete the lock file)"
        ]
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
