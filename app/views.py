"""Pages and the JSON API (see the HTTP contract in the README)."""

from __future__ import annotations

import base64
import binascii
import io
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from flask import Blueprint, abort, current_app, g, jsonify, redirect, render_template, request
from flask.blueprints import BlueprintSetupState
from flask.json.provider import DefaultJSONProvider
from flask.sansio.app import App
from werkzeug.wrappers import Response

from app.auth import login_required
from app.db import Photo, get_db
from app.emails import resolve_email
from app.errors import error_response, is_api_request
from app.graph import GraphError
from app.images import FORMATS, CheckedImage, InvalidImage, check_filename, check_image, stored_as_sent
from app.service_errors import ConfigurationError, ServiceError
from app.settings import get_settings
from app.storage import BLOCK_SIZE, StagedBlob, get_blobs

log = logging.getLogger(__name__)

bp = Blueprint("views", __name__)

DEFAULT_PAGE = 24
MAX_PAGE = 100
_FORMAT_NAMES = {"WEBP": "WebP"}


def photos_json(photos: Sequence[Photo], *, window: int | None = None) -> list[dict[str, Any]]:
    """Photos as the API answers them, their links all signed for one window (now, or the
    `BlobStore.link_window()` given)."""
    link = get_blobs().read_urls(window)
    return [
        {
            "id": str(photo.id),
            "filename": photo.filename,
            "content_type": photo.content_type,
            "size": photo.size,
            "width": photo.width,
            "height": photo.height,
            "created_at": photo.created_at.isoformat(),
            "url": link(photo.blob_name),
            "thumbnail_url": link(photo.thumb_blob_name or photo.blob_name),
        }
        for photo in photos
    ]


def photo_json(photo: Photo) -> dict[str, Any]:
    return photos_json([photo])[0]


# Photos kept as JSON text, per app (~1 KB each): all kept are dropped when there are more.
PHOTO_TEXTS = 4096


def _photo_texts(app: App) -> Callable[[Photo, int], str]:
    """One photo's JSON text in one link window, kept: within a window its links are the same
    (BlobStore.read_url), so a gallery page joins kept texts instead of building and encoding
    its photos again. A text serves only a photo equal to the one it was made of (usually the
    very same object, app.db keeps the Photos of rows seen lately)."""
    json = app.json
    kept: dict[tuple[uuid.UUID, int], tuple[Photo, str]] = {}

    def text(photo: Photo, window: int) -> str:
        key = (photo.id, window)
        hit = kept.get(key)
        if hit is not None and (hit[0] is photo or hit[0] == photo):
            return hit[1]
        made = json.dumps(photos_json([photo], window=window)[0], separators=(",", ":"))
        if len(kept) >= PHOTO_TEXTS:
            kept.clear()
        kept[key] = (photo, made)
        return made

    return text


@bp.record_once
def _keep_photo_texts(state: BlueprintSetupState) -> None:
    state.app.extensions["photo_texts"] = _photo_texts(state.app)


def page_response(page: Sequence[Photo], next_cursor: str | None) -> Response:
    """`jsonify({"photos": photos_json(page), "next_cursor": next_cursor})`, byte for byte, made
    of the photos' kept JSON texts when the app's JSON is compact and unsorted, as it is
    outside debug mode (create_app sets sort_keys off); made the plain way otherwise."""
    app, json = current_app, current_app.json
    if (
        not isinstance(json, DefaultJSONProvider)
        or json.sort_keys
        or not (json.compact if json.compact is not None else not app.debug)
    ):
        return jsonify({"photos": photos_json(page), "next_cursor": next_cursor})
    text, window = app.extensions["photo_texts"], get_blobs().link_window()
    photos = ",".join([text(photo, window) for photo in page])
    body = f'{{"photos":[{photos}],"next_cursor":{json.dumps(next_cursor)}}}\n'
    return app.response_class(body, mimetype=json.mimetype)


def encode_cursor(photo: Photo) -> str:
    raw = f"{photo.created_at.isoformat()}|{photo.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, photo_id = raw.split("|")
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        return when, uuid.UUID(photo_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        abort(400, description="The cursor is not one this API returned.")


def _photo_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        abort(404, description="No such photo.")


def _page_limit() -> int:
    raw = request.args.get("limit", str(DEFAULT_PAGE))
    # ASCII only: str.isdigit() also accepts digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
        abort(400, description=f"limit must be a whole number from 1 to {MAX_PAGE}.")
    return int(raw)


# --- pages --------------------------------------------------------------------------------


@bp.get("/")
def index() -> Any:
    user = g.user
    if user is None:
        return render_template("landing.html")
    photos = get_db().list_photos(user["oid"], limit=DEFAULT_PAGE + 1)
    page = photos[:DEFAULT_PAGE]
    return render_template(
        "index.html",
        user=user,
        photos=photos_json(page),
        next_cursor=encode_cursor(page[-1]) if len(photos) > DEFAULT_PAGE else None,
        limits=upload_limits(),
    )


def upload_limits() -> dict[str, Any]:
    """What the picker accepts, from the settings the upload route enforces."""
    settings = get_settings()
    names = [_FORMAT_NAMES.get(fmt, fmt) for fmt in FORMATS]
    return {
        "formats": ", ".join(names[:-1]) + " or " + names[-1],
        "accept": ",".join(content_type for content_type, _ in FORMATS.values()),
        "max_mb": settings.max_upload_bytes // (1024 * 1024),
        "max_files": settings.max_files_per_upload,
    }


@bp.get("/photos/<photo_id>/view")
@login_required
def view_photo(photo_id: str) -> Any:
    """The viewer page; app.errors answers a browser with the sign-in redirect or the 404 page."""
    user = g.user
    photo = get_db().get_photo(user["oid"], _photo_id(photo_id))
    if photo is None:
        abort(404, description="No such photo: it was deleted, or it is not yours.")
    newer, older = get_db().neighbours(photo)
    return render_template(
        "viewer.html",
        photo=photo,
        image_url=get_blobs().read_url(photo.blob_name),
        download_url=get_blobs().read_url(photo.blob_name, download_as=photo.filename),
        size=_human_size(photo.size),
        uploaded=photo.created_at.astimezone(UTC),
        newer=newer,
        older=older,
    )


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


# --- photos -------------------------------------------------------------------------------


@bp.post("/photos")
@login_required
def upload() -> Any:
    user = g.user
    if request.mimetype != "multipart/form-data":
        abort(415, description="Send the images as multipart/form-data in the form field 'file'.")
    files = [f for f in request.files.getlist("file") if f.filename or _has_content(f.stream)]
    if not files:
        abort(400, description="Attach one or more images in the form field 'file'.")
    limit = get_settings().max_files_per_upload
    if len(files) > limit:
        abort(400, description=f"At most {limit} files per upload.")
    # Validate every file before storing any: a bad file stores nothing.
    pending: list[_Pending] = []
    created: list[Photo] = []
    try:
        for upload in files:
            if pending and pending[-1].staged is not None:
                pending[-1].staged.wait()  # one file's blocks in memory at a time, however many files
            pending.append(_validate(user["oid"], upload.filename, upload.stream))
        owner_email = _known_email(user)
        for item in pending:
            created.append(_store(user["oid"], owner_email, item))
    except BaseException:
        for item in pending:
            if item.staged is not None:
                item.staged.abandon()
        for photo in created:  # nothing is acknowledged unless all of it is in both stores
            _remove(photo)
        raise
    if is_api_request():
        return jsonify({"photos": [photo_json(p) for p in created]}), 201
    return redirect("/", code=303)


@dataclass
class _Pending:
    """A validated upload, not yet stored; its blocks may already be staged."""

    id: uuid.UUID
    filename: str
    image: CheckedImage
    staged: StagedBlob | None


def _validate(oid: str, client_filename: str | None, stream: IO[bytes]) -> _Pending:
    """Check one file. A JPEG larger than a block is sent to storage while Pillow decodes it
    (the decode releases the GIL), as blocks that become a blob only once `_store` commits
    them: the upload costs about the longer of the two instead of their sum."""
    try:
        filename = check_filename(client_filename)
    except InvalidImage as exc:
        raise _naming(client_filename, exc) from exc
    photo_id = uuid.uuid4()
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    staged = None
    if size > BLOCK_SIZE and stored_as_sent(stream):
        staged = get_blobs().stage(_blob_name(oid, photo_id, FORMATS["JPEG"][1]), stream, length=size)
    try:
        image = check_image(stream, max_pixels=get_settings().max_image_pixels)
    except BaseException as exc:
        if staged is not None:
            staged.abandon()
        if isinstance(exc, InvalidImage):
            raise _naming(filename, exc) from exc
        raise
    if staged is not None and image.data is not stream:  # not stored as sent after all
        staged.abandon()
        staged = None
    return _Pending(photo_id, filename or f"image.{image.extension}", image, staged)


def _naming(filename: str | None, exc: InvalidImage) -> InvalidImage:
    """The same refusal with the file named first, so the answer to an upload of several files
    says which one was refused: "notes.jpg is not an image: only JPEG, … are accepted."."""
    name = filename if filename and filename.isprintable() else "A file"
    if exc.code == "unsupported_type":
        message = f"{name} is not an image: {exc.message[:1].lower()}{exc.message[1:]}"
    else:
        message = f"{name}: {exc.message}"
    return InvalidImage(exc.code, message)


def _blob_name(oid: str, photo_id: uuid.UUID, extension: str) -> str:
    """Server-chosen, never the client's filename: `<owner oid>/<photo id>.<extension>`."""
    return f"{oid}/{photo_id}.{extension}"


def _has_content(stream: Any) -> bool:
    """A form posted with no file chosen sends an empty part with an empty filename."""
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    return bool(size)


def _known_email(user: dict[str, Any]) -> str | None:
    """Best-known email for the photo row; a Graph outage never blocks an upload."""
    try:
        return resolve_email(user).email
    except GraphError as exc:
        log.warning("upload without owner email: %s", exc.code)
        return None


def _store(oid: str, owner_email: str | None, pending: _Pending) -> Photo:
    """Blob(s) first, then the row; if the row fails, the blobs go."""
    image = pending.image
    blob_name = _blob_name(oid, pending.id, image.extension)
    thumb_name = _blob_name(oid, pending.id, "thumb.jpg")
    blobs = get_blobs()
    if pending.staged is not None:
        pending.staged.commit(content_type=image.content_type)
    else:
        blobs.upload(blob_name, image.data, length=image.size, content_type=image.content_type)
    try:
        blobs.upload(thumb_name, image.thumbnail, length=len(image.thumbnail), content_type="image/jpeg")
        return get_db().insert_photo(
            Photo(
                id=pending.id,
                owner_oid=oid,
                owner_email=owner_email,
                blob_name=blob_name,
                thumb_blob_name=thumb_name,
                filename=pending.filename,
                content_type=image.content_type,
                size=image.size,
                width=image.width,
                height=image.height,
                created_at=datetime.min,
            )
        )
    except BaseException:
        for name in (blob_name, thumb_name):
            try:
                blobs.delete(name)
            except ServiceError:
                log.warning("orphan blob left for reconcile: %s", name)
        raise


def _remove(photo: Photo) -> None:
    try:
        get_db().delete_photo(photo.owner_oid, photo.id)
        for name in (photo.blob_name, photo.thumb_blob_name):
            if name:
                get_blobs().delete(name)
    except ServiceError:
        log.warning("could not roll back photo %s; reconcile removes its blobs", photo.id)


@bp.get("/api/photos")
@login_required
def list_photos() -> Any:
    user = g.user
    limit = _page_limit()
    cursor = request.args.get("cursor")
    before = decode_cursor(cursor) if cursor else None
    photos = get_db().list_photos(user["oid"], limit=limit + 1, before=before)
    page = photos[:limit]
    return page_response(page, encode_cursor(page[-1]) if len(photos) > limit else None)


@bp.get("/photos/<photo_id>")
@login_required
def show_photo(photo_id: str) -> Response:
    user = g.user
    photo = get_db().get_photo(user["oid"], _photo_id(photo_id))
    if photo is None:
        abort(404, description="No such photo.")
    return redirect(get_blobs().read_url(photo.blob_name), code=302)


@bp.delete("/photos/<photo_id>")
@login_required
def delete_photo(photo_id: str) -> Any:
    user = g.user
    # Row first: a failure after it leaves only an orphan blob, which reconcile removes.
    photo = get_db().delete_photo(user["oid"], _photo_id(photo_id))
    if photo is None:
        abort(404, description="No such photo.")
    for name in (photo.blob_name, photo.thumb_blob_name):
        if name:
            try:
                get_blobs().delete(name)
            except ServiceError:
                log.warning("orphan blob left for reconcile: %s", name)
    return "", 204


# --- the user -----------------------------------------------------------------------------


@bp.get("/api/me")
@login_required
def me() -> Any:
    user = g.user
    return jsonify({"id": user["oid"], "name": user.get("name"), "email": _known_email(user)})


@bp.get("/api/me/email")
@login_required
def my_email() -> Any:
    user = g.user
    resolved = resolve_email(user)
    return jsonify({"email": resolved.email, "source": resolved.source})


@bp.get("/get-user-email/<user_id>")
@login_required
def get_user_email(user_id: str) -> Any:
    """The source article's route, kept: only for the caller's own object id."""
    user = g.user
    if user_id.lower() != str(user["oid"]).lower():
        abort(403, description="You can only look up your own email.")
    return jsonify({"email": resolve_email(user).email})


# --- probes -------------------------------------------------------------------------------


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    """Each check is "ok", "down" (an outage) or the code of what is misconfigured, and the
    message says why, so a missing role right after a deployment is not taken for an outage."""
    checks: dict[str, str] = {}
    problems: list[str] = []
    for name, ping in (("database", get_db().ping), ("storage", get_blobs().ping)):
        try:
            ping()
            checks[name] = "ok"
        except ConfigurationError as exc:
            log.error("configuration error: %s", exc)
            checks[name] = exc.code
            problems.append(f"{name}: {exc.message}")
        except ServiceError as exc:
            log.warning("%s down: %s", name, exc)
            checks[name] = "down"
            problems.append(f"{name}: {exc.message}")
    if problems:
        return error_response(503, "not_ready", " ".join(problems), checks=checks)
    return jsonify({"status": "ready", "checks": checks})
