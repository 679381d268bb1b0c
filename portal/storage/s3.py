"""Storage on an S3-compatible server (Ceph RADOS Gateway in tests; any S3 in production).

The only module of the portal that imports boto3/botocore: every botocore error is turned into
StorageError here, so views only ever deal with the Storage protocol.
"""

from __future__ import annotations

import hashlib
from base64 import b64encode
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from flask import Response, redirect

from . import ChecksumMismatch, Digest, StorageError, StoredObject, check_key, content_disposition

# Up to this size one PUT, streamed from the (spooled) file: nothing big in memory either way. Above it,
# multipart in 8 MB parts (S3 refuses single PUTs over 5 GB).
SINGLE_PUT_LIMIT = 512 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024

_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Storage:
    """Objects in one bucket. Thread-safe: one botocore client, shared by all requests of an app."""

    def __init__(
        self,
        endpoint_url: str | None,
        bucket: str,
        region: str = "us-east-1",
        presign_seconds: int = 300,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.region = region
        self.presign_seconds = presign_seconds
        config = Config(
            signature_version="s3v4",
            # Path-style (http://host/bucket/key): works without wildcard DNS for bucket names.
            # No SHA-256 of the body for the signature: every upload carries Content-MD5, which the server
            # checks; over https (production) botocore already skips it for streamed bodies with
            # Content-MD5. On plain http it would hash every file once more.
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            # boto3 >= 1.36 adds CRC32 checksums to every upload by default. Ceph RGW (and other
            # S3-compatible servers) reject or ignore them; we send Content-MD5, which Ceph checks,
            # and verify SHA-256 ourselves.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # A stopped server must fail an upload within seconds, not hang the request worker.
            connect_timeout=2,
            read_timeout=20,
            retries={"mode": "standard", "total_max_attempts": 2},
            max_pool_connections=20,
        )
        # A session of its own: boto3's default session is shared module state and not thread-safe.
        session = boto3.session.Session()
        #: The botocore client, for maintenance scripts and tests; the portal uses the methods below.
        self.client = session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)

    # -- helpers ---------------------------------------------------------------------------------

    def _fail(self, action: str, key: str | None, exc: Exception) -> StorageError:
        where = f"{self.bucket}/{key}" if key else self.bucket
        return StorageError(f"S3 {action} {where} failed: {exc}")

    # -- Storage protocol ------------------------------------------------------------------------

    def ensure_ready(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in _NOT_FOUND:
                raise self._fail("head bucket", None, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head bucket", None, exc) from exc
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region and self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            if _error_code(exc) != "BucketAlreadyOwnedByYou":  # another worker was quicker
                raise self._fail("create bucket", None, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("create bucket", None, exc) from exc

    def describe(self) -> str:
        where = f"s3:{self.endpoint_url or 'AWS'}"
        try:
            meta = self.client.head_bucket(Bucket=self.bucket)["ResponseMetadata"]
            state = ""
        except ClientError as exc:
            meta = exc.response.get("ResponseMetadata", {})
            code = _error_code(exc)
            state = " (bucket missing)" if code in _NOT_FOUND else f" ({code or 'error'})"
        except BotoCoreError as exc:
            return f"{where} (unreachable: {exc}) bucket={self.bucket}"
        server = meta.get("HTTPHeaders", {}).get("server", "no Server header")
        return f"{where} (server: {server}) bucket={self.bucket}{state}"

    def put(self, key: str, fileobj: BinaryIO, *, content_type: str, sha256: str | None = None,
            md5: str | None = None) -> StoredObject:
        check_key(key)
        fileobj.seek(0, 2)
        size = fileobj.tell()
        fileobj.seek(0)
        try:
            if size <= SINGLE_PUT_LIMIT:
                # One request, the body streamed from the file. Content-MD5 must precede the body: hash
                # first unless the caller did (then the file is read once, by the sender). botocore
                # rewinds to 0 on a retry, so the whole file is what gets stored.
                if not (sha256 and md5):
                    digest = Digest.of_stream(fileobj)
                    fileobj.seek(0)
                    if sha256 not in (None, digest.sha256):
                        raise ChecksumMismatch(f"{key}: the file is not the one that was checked")
                    sha256, md5 = digest.sha256, digest.md5_base64
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=fileobj,
                    ContentLength=size,
                    ContentMD5=md5,
                    ContentType=content_type,
                    Metadata={"sha256": sha256},
                )
            else:
                # Very big files: each part carries its own Content-MD5; the SHA-256 of the whole is
                # computed while sending and must match before the upload is completed.
                sha256 = sha256 or Digest.of_stream(fileobj).sha256
                fileobj.seek(0)
                self._put_multipart(key, fileobj, content_type, sha256)
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("upload", key, exc) from exc
        stored_sha256 = head.get("Metadata", {}).get("sha256")
        if head.get("ContentLength") != size or stored_sha256 != sha256:
            self.delete(key)
            raise ChecksumMismatch(
                f"{key}: stored {head.get('ContentLength')} bytes sha256={stored_sha256}, "
                f"sent {size} bytes sha256={sha256}"
            )
        return StoredObject(key=key, size=size, sha256=sha256)

    def _put_multipart(self, key: str, fileobj: BinaryIO, content_type: str, sha256: str) -> None:
        upload_id = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type, Metadata={"sha256": sha256}
        )["UploadId"]
        try:
            parts = []
            sent = hashlib.sha256()
            # One part in memory at a time (8 MB), never the whole file.
            while chunk := fileobj.read(PART_SIZE):
                sent.update(chunk)
                md5 = b64encode(hashlib.md5(chunk, usedforsecurity=False).digest()).decode("ascii")
                answer = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=len(parts) + 1,
                    Body=chunk,
                    ContentMD5=md5,
                )
                parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})
                del chunk
            if sent.hexdigest() != sha256:
                raise ChecksumMismatch(f"{key}: the file changed while it was sent")
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # Parts of an unfinished upload take space until aborted; best effort, keep the first error.
            # When the server is gone, the sweep aborts them later (abort_unfinished).
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except (BotoCoreError, ClientError):
                pass
            raise

    def open(self, key: str) -> BinaryIO:
        check_key(key)
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                raise FileNotFoundError(f"{self.bucket}/{key}") from exc
            raise self._fail("get", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("get", key, exc) from exc

    def delete(self, key: str) -> None:
        check_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)  # S3 answers 204 for missing keys too
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("delete", key, exc) from exc

    def exists(self, key: str) -> bool:
        check_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                return False
            raise self._fail("head", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head", key, exc) from exc

    def keys(self, prefix: str = "") -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("list", prefix, exc) from exc

    def abort_unfinished(self, older_than: timedelta) -> int:
        cutoff = datetime.now(UTC) - older_than
        aborted = 0
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < cutoff:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                           UploadId=upload["UploadId"])
                        aborted += 1
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("abort unfinished uploads", None, exc) from exc
        return aborted

    def download_response(self, key: str, *, filename: str, content_type: str) -> Response:
        """A 302 to a short-lived presigned GET URL; the bytes go straight from S3 to the browser.

        Signing is local work: the object's existence is not checked here.
        """
        check_key(key)
        try:
            url = self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentDisposition": content_disposition(filename),
                    "ResponseContentType": content_type,
                },
                ExpiresIn=self.presign_seconds,
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("presign", key, exc) from exc
        response = redirect(url, code=302)
        response.headers["X-Content-Type-Options"] = "nosniff"
        # The URL is a bearer token for a few minutes: keep it out of caches.
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def close(self) -> None:
        """Close the client's pooled connections (tests, shutdown)."""
        self.client.close()
