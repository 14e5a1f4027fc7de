"""Who may drive the workbench, which folders it reads, and how much one visitor may ask of it.

Plain Python (no streamlit): the app passes in what Streamlit knows (the server's configured address,
the token from its secrets) and draws what comes back; tests call these functions directly.

- The mode: a server that listens on loopback only serves its owner the whole workbench ("local").
  One that listens beyond loopback (or is told it is shared, MASKDET_SHARED=1, e.g. behind a reverse
  proxy) asks every visitor for the access token when one is configured ("token"), and without a token
  serves only the Classify page ("classify-only": no dataset browsing, no training, no promotion).
- Folders: the dataset, runs and model folders the app reads must lie under configured roots, checked
  after resolving `..` and symlinks.
- Limits: at most MAX_CLASSIFICATIONS photos are classified at once in a server, and a session classifies
  at most max_uploads() uploads.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import config

LOCAL, TOKEN, CLASSIFY_ONLY = "local", "token", "classify-only"
# What a visitor can do in the app; "classify" is all a classify-only server allows.
ACTIONS = ("classify", "browse", "train", "evaluate", "promote", "choose_folders")
CLASSIFY_ONLY_ACTIONS = frozenset({"classify"})
WHAT = {
    "browse": "browsing datasets",
    "train": "training",
    "evaluate": "evaluating on a dataset",
    "promote": "promoting or rolling back models",
    "choose_folders": "choosing folders",
    "classify": "classifying photos",
}


class AccessDenied(PermissionError):
    """An action this server's mode does not allow; the message says why, for a user."""


class PathRefused(ValueError):
    """A folder outside the roots the app may read; the message says which roots, for a user."""


class Busy(RuntimeError):
    """The server is at its limit of simultaneous classifications; the message says so, for a user."""


# ---------------------------------------------------------------- the mode


def is_loopback(address: str | None) -> bool:
    """Whether a server configured with this server.address listens on loopback only.

    None or "" (Streamlit's default) binds every interface; "0.0.0.0" and "::" too; a unix socket
    or a host name other than localhost is treated as reachable by others (fail closed)."""
    if not address:
        return False
    address = address.strip().strip("[]")
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def token_from(env=None, secrets=None) -> str | None:
    """The configured access token: MASKDET_TOKEN from the environment, else from Streamlit's secrets
    (a mapping; secrets.toml's `MASKDET_TOKEN = "..."`). Blank counts as none."""
    env = os.environ if env is None else env
    for source in (env, secrets or {}):
        try:
            value = source.get("MASKDET_TOKEN")
        except Exception:  # a secrets object that cannot be read counts as no token there
            value = None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def fingerprint(token: str) -> str:
    """What a session keeps once its visitor gave the right token (never the token itself); it changes
    when the token does, so a new token signs everybody out."""
    return hashlib.sha256(b"maskdet-access\0" + token.encode()).hexdigest()


@dataclass(frozen=True)
class Access:
    """The server's mode and what it allows. Build it with decide()."""

    mode: str
    address: str | None
    token: str | None = field(default=None, repr=False)

    @property
    def shared(self) -> bool:
        return self.mode != LOCAL

    @property
    def needs_token(self) -> bool:
        return self.mode == TOKEN

    def allows(self, action: str) -> bool:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        return self.mode != CLASSIFY_ONLY or action in CLASSIFY_ONLY_ACTIONS

    def require(self, action: str) -> None:
        """Raise AccessDenied unless this mode allows the action."""
        if not self.allows(action):
            raise AccessDenied(
                f"{WHAT[action].capitalize()} is switched off: this server is shared on the "
                f"network without an access token, so it serves the Classify page only. "
                "Its owner can set MASKDET_TOKEN to open the whole workbench to token holders."
            )

    def check_token(self, given: str | None) -> bool:
        """Whether `given` is the configured token (compared in constant time)."""
        if not self.token or not isinstance(given, str):
            return False
        return hmac.compare_digest(given.strip().encode(), self.token.encode())

    def signed_in(self, session_fingerprint: str | None) -> bool:
        """Whether a session that kept `session_fingerprint` may see the pages."""
        if self.mode != TOKEN:
            return True
        return bool(session_fingerprint) and hmac.compare_digest(session_fingerprint, fingerprint(self.token))

    def describe(self) -> str:
        """One sentence for the sidebar: where the server listens and what that allows."""
        where = self.address or "all interfaces"
        if self.mode == LOCAL:
            return f"Local: listening on {where} only; the whole workbench is yours."
        if self.mode == TOKEN:
            return f"Shared ({where}): every visitor needs the access token."
        return f"Shared ({where}) without an access token: Classify only, read-only."


def decide(address: str | None, token: str | None = None, shared: bool | None = None) -> Access:
    """The mode of a server configured with `address` (Streamlit's server.address) and `token`.
    `shared` forces shared mode (None: MASKDET_SHARED from the environment, for a server behind a proxy)."""
    if shared is None:
        shared = _truthy(os.environ.get("MASKDET_SHARED"))
    if is_loopback(address) and not shared:
        return Access(LOCAL, address, token)
    return Access(TOKEN if token else CLASSIFY_ONLY, address, token)


# ---------------------------------------------------------------- folders


def data_roots(env=None) -> list[Path]:
    """The folders under which the app reads datasets, runs and models, resolved: MASKDET_DATA_ROOTS
    (os.pathsep-separated) or else the project's data folder and ../shared/datasets; always also the
    configured dataset, runs and models folders (MASKDET_DATA, MASKDET_RUNS, MASKDET_MODELS)."""
    env = os.environ if env is None else env
    listed = [p for p in (env.get("MASKDET_DATA_ROOTS") or "").split(os.pathsep) if p.strip()]
    if not listed:
        listed = [config.LOCAL_DATA_DIR, config.PROJECT_DIR.parent / "shared" / "datasets"]
    roots = [Path(p).expanduser().resolve() for p in [*listed, config.DATA_DIR, config.RUNS_DIR, config.MODELS_DIR]]
    return [
        r
        for i, r in enumerate(roots)  # each once, and none inside another
        if r not in roots[:i] and not any(r != o and r.is_relative_to(o) for o in roots)
    ]


def confine(path, roots: list[Path] | None = None) -> Path:
    """The folder `path`, resolved (`..` and symlinks followed), if it lies under one of the roots;
    else PathRefused. The folder need not exist (the caller says so if it does not)."""
    roots = data_roots() if roots is None else [Path(r).expanduser().resolve() for r in roots]
    text = str(path).strip()
    if not text or "\0" in text:
        raise PathRefused("no folder given")
    try:
        resolved = Path(text).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise PathRefused(f"{text}: cannot be resolved ({exc})") from None
    if any(resolved == r or resolved.is_relative_to(r) for r in roots):
        return resolved
    via = (
        " (through '..')"
        if ".." in Path(text).parts
        else " (through a symlink)"
        if resolved != Path(os.path.abspath(Path(text).expanduser()))
        else ""
    )
    raise PathRefused(
        f"{text}: outside the folders this app may read{via}. Allowed: "
        + ", ".join(str(r) for r in roots)
        + " (MASKDET_DATA_ROOTS sets them)."
    )


# ---------------------------------------------------------------- limits


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


MAX_CLASSIFICATIONS = _env_int("MASKDET_MAX_CLASSIFICATIONS", 4)  # photos classified at once, per server
SLOT_WAIT_S = 30.0  # how long a photo waits for a free slot before its visitor is told the server is busy
_slots = threading.BoundedSemaphore(MAX_CLASSIFICATIONS)


def max_uploads() -> int:
    """Uploads (photos and camera shots) one session may have classified (MASKDET_MAX_UPLOADS, default 100)."""
    return _env_int("MASKDET_MAX_UPLOADS", 100)


@contextmanager
def classification_slot(wait: float | None = None):
    """Hold one of the server's MAX_CLASSIFICATIONS classification slots for the duration; waits up to
    `wait` seconds (default SLOT_WAIT_S) for one, then raises Busy."""
    if not _slots.acquire(timeout=SLOT_WAIT_S if wait is None else wait):
        raise Busy(
            f"The server is classifying {MAX_CLASSIFICATIONS} photos for others right now; try again in a moment."
        )
    try:
        yield
    finally:
        _slots.release()


def admit_uploads(seen: list[str], upload_ids: list[str], limit: int | None = None) -> tuple[list[str], list[str]]:
    """Which uploads a session may have classified: those seen before, and new ones while the session's
    count (len(seen)) is under the limit. Appends the newly admitted ids to `seen`; returns
    (admitted, refused), both in the order of upload_ids."""
    limit = max_uploads() if limit is None else limit
    admitted, refused = [], []
    for uid in upload_ids:
        if uid in seen:
            admitted.append(uid)
        elif len(seen) < limit:
            seen.append(uid)
            admitted.append(uid)
        else:
            refused.append(uid)
    return admitted, refused
