"""Crash-safe checkpoint files, and what a `dqnfast train` checkpoint must hold.

A checkpoint is a ``torch.save`` payload behind a one-line header that carries its length and
SHA-256, so a truncated or damaged file is refused with a clear :class:`CheckpointError` instead
of a pickle traceback (or, worse, half-loaded weights)::

    DQNFAST-CHECKPOINT 1 <payload bytes> <sha256 hex>\\n<payload>

Writes are atomic: the bytes go to a temporary file in the same folder, are flushed and fsync'ed,
then ``os.replace`` puts the file in place and the folder is fsync'ed. A crash at any moment
leaves either the previous checkpoint or the new one, never a mix.

The payload is loaded with ``torch.load(weights_only=True)``: tensors, numbers, strings, lists,
tuples and dicts only, so loading a checkpoint cannot run code.

:func:`load_training_checkpoint` reads one written by `dqnfast train` (``format`` ``TRAIN_FORMAT``);
the trainer writes them (``dqnfast.train.checkpoints``), `dqnfast evaluate` reads them.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
from typing import Any, Dict, Union

import torch

MAGIC = b"DQNFAST-CHECKPOINT"
VERSION = 1
_MAX_HEADER = 256

PathLike = Union[str, "os.PathLike[str]"]

TRAIN_FORMAT = "dqnfast.train"
TRAIN_KEYS = ("format", "config", "preset", "counters", "learner", "rng", "num_actions")


class CheckpointError(ValueError):
    """The file is not a readable dqnfast checkpoint (missing, truncated, corrupt or foreign)."""


def save(path: PathLike, state: Dict[str, Any]) -> None:
    """Write ``state`` (a dict of tensors / plain Python values) to ``path`` atomically."""
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    header = b"%s %d %d %s\n" % (MAGIC, VERSION, len(payload), hashlib.sha256(payload).hexdigest().encode())
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: str) -> None:
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def load(path: PathLike, map_location: Union[str, torch.device, None] = "cpu") -> Dict[str, Any]:
    """Read and verify a checkpoint written by :func:`save`; CheckpointError when it is unusable."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path!r} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {path!r} is a directory, not a file") from None
    end = data.find(b"\n", 0, _MAX_HEADER)
    parts = data[:end].split(b" ") if end >= 0 else []
    if len(parts) != 4 or parts[0] != MAGIC:
        raise CheckpointError(f"{path!r} is not a dqnfast checkpoint (no {MAGIC.decode()} header)")
    try:
        version, length, digest = int(parts[1]), int(parts[2]), parts[3].decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"checkpoint {path!r} has a damaged header") from None
    if version != VERSION:
        raise CheckpointError(f"checkpoint {path!r} has format version {version}; this dqnfast reads version {VERSION}")
    payload = data[end + 1:]
    if len(payload) != length:
        raise CheckpointError(f"checkpoint {path!r} is truncated or padded: header says {length} payload bytes, "
                              f"file holds {len(payload)}")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"checkpoint {path!r} is corrupt: SHA-256 of its contents does not match its header")
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as e:  # checksum passed, so this is a foreign or incompatible payload
        raise CheckpointError(f"checkpoint {path!r} could not be unpickled: {e}") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path!r} does not hold a dict")
    return state


def load_training_checkpoint(path: PathLike) -> Dict[str, Any]:
    """A `dqnfast train` checkpoint, verified; CheckpointError (a ValueError) otherwise."""
    state = load(path)
    missing = [k for k in TRAIN_KEYS if k not in state]
    if state.get("format") != TRAIN_FORMAT or missing:
        raise CheckpointError(f"{os.fspath(path)!r} is a checkpoint but not of `dqnfast train` "
                              f"(format {state.get('format')!r}, missing {missing})")
    return state
