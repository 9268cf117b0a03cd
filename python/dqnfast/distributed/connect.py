"""Joining or starting Ray with token authentication on and the dashboard off."""
from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Optional

logger = logging.getLogger(__name__)

INSTALL_HINT = 'Ray is not installed; install it with: pip install "dqnfast[ray]"'


def require_ray() -> Any:
    """The ray module, or ImportError saying how to install it."""
    try:
        import ray
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(INSTALL_HINT) from e
    return ray


def _has_token() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(path).is_file() if path else (Path.home() / ".ray" / "auth_token").is_file()


def ensure_token_auth() -> None:
    """Token authentication for Ray started or joined from this process (and its children).

    Ray reads ``RAY_AUTH_MODE=token`` and the token from ``RAY_AUTH_TOKEN``, the file named by
    ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``. An explicit ``RAY_AUTH_MODE`` is respected
    (with a warning when it is ``disabled``). With token mode and no token anywhere, a random one
    is made for this process's environment only (nothing written to disk): right for a cluster
    started here, whose nodes are this process's children.
    """
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is None:
        os.environ["RAY_AUTH_MODE"] = "token"
    elif mode.lower() != "token":
        logger.warning("RAY_AUTH_MODE=%s: Ray token authentication is off, so anyone who can reach this "
                       "cluster's ports can run code on it", mode)
        return
    if not _has_token():
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    if "ray" in sys.modules:  # Ray caches its config at import: make it see the mode (as Ray itself does)
        try:
            from ray._raylet import Config

            Config.initialize("")
        except (ImportError, AttributeError):  # pragma: no cover - another Ray layout
            pass


def connect(address: Optional[str], *, dashboard: bool = False, num_cpus: Optional[int] = None) -> bool:
    """Connect this process to Ray; returns whether it started Ray (and so should shut it down).

    ``address``: ``"local"`` starts Ray on this machine, bound to 127.0.0.1; ``"auto"`` joins the
    cluster running on this machine; ``"host:port"`` joins the cluster whose head listens there;
    ``None`` uses the Ray this process is already connected to.
    """
    ray = require_ray()
    if address is None:
        if not ray.is_initialized():
            raise ValueError("address=None needs ray.init() to have been called; pass 'local', 'auto' or host:port")
        return False
    if not isinstance(address, str) or not address:
        raise TypeError(f"address must be 'local', 'auto' or 'host:port', got {address!r}")
    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; pass address=None to use it")
    ensure_token_auth()
    if address == "local":
        # address="local": always a new Ray, never one that another run left on this machine
        ray.init(address="local", include_dashboard=dashboard, num_cpus=num_cpus, _node_ip_address="127.0.0.1",
                 logging_level=logging.WARNING, log_to_driver=True)
        return True
    if address != "auto" and ":" not in address:
        raise ValueError(f"address must be 'local', 'auto' or 'host:port', got {address!r}")
    ray.init(address=address, logging_level=logging.WARNING)
    return False
