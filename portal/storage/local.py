"""Storage in a directory on this machine: development, tests and single-server installs."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from flask import Response, send_file

from . import CHUNK_SIZE, ChecksumMismatch, Digest, StorageError, StoredObject, check_key, safe_download_name

_TEMP_PREFIX = ".upload-"


class LocalStorage:
    """Objects as files under root; key "receipts/7/ab12…" is the file root/receipts/7/ab12…."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        check_key(key)
        path = (self.root / key).resolve()
        # resolve() follows symlinks too: a link pointing out of root is refused like "..".
        if path == self.root or not path.is_relative_to(self.root):
            raise ValueError(f"storage key escapes the storage directory: {key!r}")
        return path

    def ensure_ready(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create storage directory {self.root}: {exc}") from exc

    def describe(self) -> str:
        return f"local:{self.root}"

    def put(self, key: str, fileobj: BinaryIO, *, content_type: str, sha256: str | None = None,
            md5: str | None = None) -> StoredObject:
        # content_type is not kept on disk: the database row records it.
        path = self._path(key)
        tmp_name: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fileobj.seek(0)
            digest = Digest()
            # Same directory as the target, so os.replace is an atomic rename: readers see the old
            # file or the complete new one, never a half-written one.
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=_TEMP_PREFIX, delete=False) as tmp:
                tmp_name = tmp.name
                while chunk := fileobj.read(CHUNK_SIZE):
                    digest.update(chunk)
                    tmp.write(chunk)
                tmp.flush()
                os.fsync(tmp.fileno())
            with open(tmp_name, "rb") as written:
                check = Digest.of_stream(written)
            if (check.size, check.sha256) != (digest.size, digest.sha256) or sha256 not in (None, digest.sha256) \
                    or md5 not in (None, digest.md5_base64):
                raise ChecksumMismatch(f"{key}: the file on disk differs from what was received")
            os.replace(tmp_name, path)
            tmp_name = None
        except OSError as exc:
            raise StorageError(f"{key}: could not write {path}: {exc}") from exc
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
        return StoredObject(key=key, size=digest.size, sha256=digest.sha256)

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def delete(self, key: str) -> None:
        # Empty directories stay: removing them could race with a concurrent put into the same one.
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"{key}: could not delete: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str = "") -> Iterator[str]:
        # Walk only the deepest directory the prefix names; the rest of it is a name filter.
        base = self.root
        if "/" in prefix:
            base = self._path(prefix.rsplit("/", 1)[0])
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(_TEMP_PREFIX):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def abort_unfinished(self, older_than: timedelta) -> int:
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for path in self.root.rglob(_TEMP_PREFIX + "*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def download_response(self, key: str, *, filename: str, content_type: str) -> Response:
        response = send_file(
            self._path(key),
            mimetype=content_type,
            as_attachment=True,
            download_name=safe_download_name(filename),
            max_age=0,
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Receipts hold personal data: no copies in shared caches or the browser's disk cache.
        response.cache_control.public = False
        response.cache_control.private = True
        response.cache_control.no_store = True
        return response
