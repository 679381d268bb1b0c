"""File storage: the Storage protocol, its errors, and the helpers both backends share.

Views call `get_storage()` and never see the backend. Keys are always generated here
(`new_key("receipts/<case>")`), never taken from the user's filename; the database row keeps the
key, size, SHA-256, content type and original filename.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable
from urllib.parse import quote
from uuid import uuid4

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from werkzeug.utils import secure_filename

if TYPE_CHECKING:
    from flask import Response

__all__ = [
    "CHUNK_SIZE",
    "ChecksumMismatch",
    "Digest",
    "Storage",
    "StorageError",
    "StoredObject",
    "check_key",
    "content_disposition",
    "get_storage",
    "init_storage",
    "new_key",
    "safe_download_name",
]

CHUNK_SIZE = 1024 * 1024
MAX_KEY_LENGTH = 1024


@dataclass(frozen=True)
class StoredObject:
    """What the database records about a stored file."""

    key: str
    size: int
    sha256: str  # hex


class StorageError(Exception):
    """The storage service could not be reached or refused the operation; the user may try again."""


class ChecksumMismatch(StorageError):
    """What was stored is not what was sent; the stored copy has been removed."""


@runtime_checkable
class Storage(Protocol):
    """Where uploaded files live. Implemented by LocalStorage (a directory) and S3Storage."""

    def put(self, key: str, fileobj: BinaryIO, *, content_type: str, sha256: str | None = None,
            md5: str | None = None) -> StoredObject:
        """Store a seekable binary file (all of it, from the start) under key, in chunks.

        `sha256` (hex) and `md5` (base64), when the caller hashed these very bytes already (the upload
        checks do, in the pass that reads the file), spare the backend a pass of its own: the server
        checks the bytes it receives against the MD5. With `sha256` alone the file is hashed again and
        compared. Raises StorageError if the service fails, ChecksumMismatch if the stored copy differs
        (or the file is not the one the caller hashed).
        """
        ...

    def open(self, key: str) -> BinaryIO:
        """A binary stream of the object; the caller closes it. FileNotFoundError if missing."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under key."""
        ...

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every stored key that starts with prefix, in no promised order."""
        ...

    def download_response(self, key: str, *, filename: str, content_type: str) -> Response:
        """A response that makes the browser download the object as an attachment named filename."""
        ...

    def abort_unfinished(self, older_than: timedelta) -> int:
        """Discard uploads started longer ago than older_than and never finished (the server or the
        worker died mid-upload): S3 multipart uploads, half-written temporary files. Returns how many."""
        ...

    def describe(self) -> str:
        """One line naming the backend, for logs and the pytest header."""
        ...

    def ensure_ready(self) -> None:
        """Create the directory or bucket if it does not exist yet."""
        ...


class Digest:
    """Size, MD5 and SHA-256 of a byte stream, fed chunk by chunk."""

    def __init__(self) -> None:
        self.size = 0
        # MD5 only because S3's Content-MD5 asks for it; integrity is judged by SHA-256.
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._md5.update(chunk)
        self._sha256.update(chunk)

    @property
    def md5_base64(self) -> str:
        return b64encode(self._md5.digest()).decode("ascii")

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @classmethod
    def of_stream(cls, fileobj: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Digest:
        """Read fileobj to its end, one chunk at a time."""
        digest = cls()
        while chunk := fileobj.read(chunk_size):
            digest.update(chunk)
        return digest


def new_key(prefix: str) -> str:
    """A fresh server-generated key under prefix, e.g. "receipts/42/<32 hex digits>"."""
    return f"{prefix}/{uuid4().hex}"


def check_key(key: str) -> str:
    """Refuse keys that could name something outside the store; return the key unchanged."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"invalid storage key (empty or too long): {key[:80]!r}")
    if key.startswith("/") or "\\" in key or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise ValueError(f"invalid storage key: {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid storage key (empty, '.' or '..' segment): {key!r}")
    return key


_UNSAFE_IN_NAMES = set('"<>:|?*;')


def safe_download_name(filename: str) -> str:
    """The user's filename fit for a header: no path, no control or bidi characters, not too long.

    Letters outside ASCII stay (the header carries them as RFC 5987 `filename*`).
    """
    name = unicodedata.normalize("NFC", filename or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = []
    for ch in name:
        category = unicodedata.category(ch)
        if category[0] == "C" or category in ("Zl", "Zp") or ch in _UNSAFE_IN_NAMES:
            continue  # controls, format characters such as U+202E (which can fake an extension)
        kept.append(" " if category == "Zs" else ch)
    name = " ".join("".join(kept).split()).strip(" .")
    if len(name) > 150:
        stem, ext = os.path.splitext(name)
        ext = ext[:20]
        name = stem[: 150 - len(ext)].rstrip(" .") + ext
    return name or "download"


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII `filename` and, when needed, the exact name as `filename*`."""
    name = safe_download_name(filename)
    stem, ext = os.path.splitext(name)
    ascii_ext = secure_filename(ext)
    ascii_name = (secure_filename(stem) or "download") + (f".{ascii_ext}" if ascii_ext else "")
    if ascii_name == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def init_storage(app: Flask) -> Storage:
    """Build the backend named by STORAGE_BACKEND and keep it in app.extensions["storage"].

    No network or disk access happens here; call `ensure_ready()` (or `flask init-storage`)
    to create the bucket or directory.
    """
    backend = app.config.get("STORAGE_BACKEND", "local")
    storage: Storage
    if backend == "local":
        from .local import LocalStorage

        storage = LocalStorage(app.config["STORAGE_LOCAL_DIR"])
    elif backend == "s3":
        from .s3 import S3Storage  # boto3 is imported only when S3 is configured

        storage = S3Storage(
            endpoint_url=app.config.get("S3_ENDPOINT_URL") or None,
            bucket=app.config["S3_BUCKET"],
            region=app.config.get("S3_REGION") or "us-east-1",
            presign_seconds=int(app.config.get("S3_PRESIGN_SECONDS", 300)),
        )
    else:
        from portal.config import ConfigError

        raise ConfigError(f"STORAGE_BACKEND must be 'local' or 's3', not {backend!r}.")
    app.extensions["storage"] = storage
    app.cli.add_command(_init_storage_command)
    return storage


def get_storage() -> Storage:
    """The current app's storage backend."""
    return current_app.extensions["storage"]


@click.command("init-storage")
@with_appcontext
def _init_storage_command() -> None:
    """Create the storage directory or bucket if missing."""
    storage = get_storage()
    storage.ensure_ready()
    click.echo(f"Storage ready: {storage.describe()}")
