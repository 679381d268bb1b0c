"""Visit photos: stored re-encoded with the returnee's consent (or adopted from a resumable upload),
scanned for malware on the task queue, and the hourly sweep of upload intents and orphaned objects."""

from __future__ import annotations

from datetime import timedelta
from typing import BinaryIO

from flask_babel import gettext as _
from sqlmodel import Session, select

from portal import audit
from portal.auth.models import User
from portal.clock import utcnow
from portal.visits.models import Visit, VisitPhoto
from portal.visits.services import VisitError

PHOTO_PREFIX = "visits"


def add_photo(db: Session, actor: User, visit: Visit, filename: str, stream: BinaryIO,
              consent: bool) -> VisitPhoto:
    """Store a visit photo re-encoded (no EXIF or GPS): intent row, object, then confirmation."""
    from portal.scanning import services as scanning
    from portal.storage import StorageError, get_storage, new_key
    from portal.uploads.files import JPEG, PNG, WEBP, FileProblem, clean_upload, sniff

    if not consent:
        raise VisitError(_("A photo can only be added with the returnee's consent."), "consent")
    head = stream.read(32)
    stream.seek(0)
    if sniff(head) not in (JPEG, PNG, WEBP):
        raise VisitError(_("The selected file must be a JPG, PNG or WebP photo."), "photo")
    try:
        clean = clean_upload(filename, stream)
    except FileProblem as exc:
        raise VisitError(str(exc), "photo") from None
    photo = VisitPhoto(visit_id=visit.id, key=new_key(f"{PHOTO_PREFIX}/{visit.case_id}"),
                       content_type=clean.content_type, original_filename=clean.filename, consent=True,
                       uploaded_by_id=actor.id, scan_status=scanning.initial_status())
    db.add(photo)
    db.commit()  # the intent: if storing fails half-way, the sweep finds the row and the object
    storage = get_storage()
    try:
        stored = storage.put(photo.key, clean.data, content_type=clean.content_type, sha256=clean.sha256,
                             md5=clean.md5 or None)
    except StorageError:
        db.delete(photo)
        db.commit()
        raise VisitError(_("The photo could not be stored. Please try again."), "photo") from None
    photo.size, photo.sha256, photo.confirmed = stored.size, stored.sha256, True
    db.add(photo)
    audit.record(db, actor, "visit.photo_added", visit, after={"photo_id": photo.id, "sha256": stored.sha256,
                                                               "consent": True})
    db.commit()
    scanning.scan_new(db, storage, [photo], actor)  # the scan runs on the task queue; the photo is pending
    return photo


def add_uploaded_photos(db: Session, actor: User, visit: Visit, rows: list, consent: bool) -> list[VisitPhoto]:
    """Photos from completed resumable uploads (checked and stored already): the photo rows adopt the
    uploads' keys and the uploads are claimed in the same transaction; then the malware scan runs."""
    from portal.scanning import services as scanning
    from portal.storage import get_storage
    from portal.uploads import services as uploads

    if not consent:
        raise VisitError(_("A photo can only be added with the returnee's consent."), "consent")
    photos = [VisitPhoto(visit_id=visit.id, key=row.key, size=row.size or 0, sha256=row.sha256,
                         content_type=row.content_type, original_filename=row.filename, consent=True,
                         confirmed=True, uploaded_by_id=actor.id, scan_status=scanning.initial_status())
              for row in rows]
    db.add_all(photos)
    if not uploads.claim(db, [row.id for row in rows], visit_id=visit.id):
        db.rollback()
        raise VisitError(_("An uploaded file is no longer available (it was removed, used already or kept for "
                           "more than 24 hours). Choose it again."), "photo")
    db.flush()
    for photo in photos:
        audit.record(db, actor, "visit.photo_added", visit, after={"photo_id": photo.id, "sha256": photo.sha256,
                                                                   "key": photo.key, "consent": True})
    db.commit()
    return scanning.scan_new(db, get_storage(), photos, actor)


def photos_of(db: Session, visit: Visit) -> list[VisitPhoto]:
    return list(db.exec(select(VisitPhoto).where(VisitPhoto.visit_id == visit.id, VisitPhoto.confirmed.is_(True))
                        .order_by(VisitPhoto.id)))


def sweep_photos(db: Session, older_than: timedelta = timedelta(hours=1)) -> tuple[int, int]:
    """Remove photo upload intents that never got confirmed (with their objects), and stored photo
    objects no row refers to (a failed upload whose clean-up could not reach the storage).
    Returns (intents removed, orphaned objects removed)."""
    from portal.storage import get_storage

    storage = get_storage()
    stale = db.exec(select(VisitPhoto).where(VisitPhoto.confirmed.is_(False),
                                             VisitPhoto.created_at < utcnow() - older_than)).all()
    for photo in stale:
        storage.delete(photo.key)
        db.delete(photo)
    db.commit()
    # List first, then read the rows: a row is committed before its object is stored, so an upload
    # in progress always has its row by the time its key can be listed.
    from portal.uploads.services import kept_keys

    listed = list(storage.keys(PHOTO_PREFIX + "/"))
    known = set(db.exec(select(VisitPhoto.key)).all()) | kept_keys(db)  # ready uploads wait for a form
    orphans = [key for key in listed if key not in known]
    for key in orphans:
        storage.delete(key)
    return len(stale), len(orphans)


def sweep_photos_job() -> str:
    """The hourly job: the photo sweep of `flask --app portal visits sweep-photos`."""
    from portal import db as dbm

    with Session(dbm.engine(), expire_on_commit=False) as db:
        intents, orphans = sweep_photos(db)
    return f"{intents} intents, {orphans} orphans"
