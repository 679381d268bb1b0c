"""What text recognition found on a receipt's first file: one row per receipt (portal/ocr/services.py)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Integer, Text
from sqlmodel import Field, SQLModel

from portal.clock import utcnow


class TextStatus(StrEnum):
    READ = "read"  # text found (maybe no fields)
    EMPTY = "empty"  # read, but no text on it (a photo of a product, a blank page)
    UNREADABLE = "unreadable"  # the file could not be opened as a picture or PDF


class ReceiptText(SQLModel, table=True):
    """The recognised text of a receipt's first receipt file, the fields found in it and where they were.

    `fields`: {"supplier" | "invoice_number" | "invoice_date" | "amount" | "currency":
    {"value": str, "box": [left, top, width, height] | None, "line": int}}; boxes are in pixels of the
    upright picture (`width` × `height`), or points of a PDF's first page. `lines`: [{"text", "box"}].
    """

    __tablename__ = "receipt_texts"

    id: int | None = Field(default=None, primary_key=True)
    receipt_id: int = Field(sa_column=Column(Integer, ForeignKey("receipts.id", ondelete="CASCADE"),
                                             nullable=False, unique=True))
    file_id: int | None = Field(default=None, sa_column=Column(
        Integer, ForeignKey("receipt_files.id", ondelete="SET NULL"), nullable=True))
    status: str = Field(default=TextStatus.READ, max_length=16)
    text: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    lines: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    width: int = 0
    height: int = 0
    engine: str = Field(default="", max_length=100)
    script: str = Field(default="", max_length=20)
    confidence: int = 0  # Tesseract's mean word confidence, 0–100 (100 for a PDF's text layer)
    millis: int = 0  # how long the reading took
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class UploadText(SQLModel, table=True):
    """What text recognition found on a completed receipt upload before its receipt exists (the form's
    suggestions, portal/ocr/prefill.py). The same columns as ReceiptText, plus `crops`: {field: JPEG as
    base64} of where on the picture each field was. Carried over to the receipt's ReceiptText when the form
    is saved (no second reading); removed with its upload (the uploads' sweep)."""

    __tablename__ = "upload_texts"

    id: int | None = Field(default=None, primary_key=True)
    upload_id: int = Field(sa_column=Column(Integer, ForeignKey("upload.id", ondelete="CASCADE"),
                                            nullable=False, unique=True))
    status: str = Field(default=TextStatus.READ, max_length=16)
    text: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    lines: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    crops: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    width: int = 0
    height: int = 0
    engine: str = Field(default="", max_length=100)
    script: str = Field(default="", max_length=20)
    confidence: int = 0
    millis: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
