"""Pages and the JSON API (see the HTTP contract in the README)."""

from __future__ import annotations

import base64
import binascii
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, current_app, g, jsonify, redirect, render_template, request
from flask.blueprints import BlueprintSetupState
from flask.json.provider import DefaultJSONProvider
from flask.sansio.app import App
from werkzeug.wrappers import Response

from app.auth import login_required
from app.csrf import csrf
from app.db import Photo, get_db
from app.emails import resolve_email
from app.errors import error_response, is_api_request
from app.graph import GraphError
from app.images import FORMATS
from app.service_errors import ConfigurationError, ServiceError
from app.settings import get_settings
from app.storage import get_blobs
from app.uploads import Pending, blob_name, received, submit_in_context

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


def _own_photo(raw_id: str, missing: str) -> Photo:
    """The signed-in user's photo with this id; 404 with `missing` when there is none."""
    photo = get_db().get_photo(g.user["oid"], _photo_id(raw_id))
    if photo is None:
        abort(404, description=missing)
    return photo


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
    photo = _own_photo(photo_id, "No such photo: it was deleted, or it is not yours.")
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
@csrf.exempt  # checked by app/uploads.py as the body arrives, with Flask-WTF's validate_csrf
@login_required
def upload() -> Any:
    user = g.user
    if request.mimetype != "multipart/form-data":
        csrf.protect()  # a refused token is named first, as on every other write
        abort(415, description="Send the images as multipart/form-data in the form field 'file'.")
    with received(user["oid"]) as upload:
        pending = upload.files
        if not pending:
            abort(400, description="Attach one or more images in the form field 'file'.")
        created: list[Photo] = []
        try:
            store_cpu = time.thread_time()
            owner_email = _known_email(user)
            for item in pending:
                created.append(_store(user["oid"], owner_email, item))
            store_cpu = time.thread_time() - store_cpu
        except BaseException:
            for item in pending:
                if item.staged is not None:
                    item.staged.abandon()
            for photo in created:  # nothing is acknowledged unless all of it is in both stores
                _remove(photo)
            raise
        log.info(
            "upload stored",
            extra={
                "files": len(created),
                "bytes": sum(photo.size for photo in created),
                **upload.phases_ms(time.perf_counter()),
                "store_cpu_ms": round(store_cpu * 1000, 1),  # blobs and row, this thread's part
            },
        )
    if is_api_request():
        return jsonify({"photos": [photo_json(p) for p in created]}), 201
    return redirect("/", code=303)


def _known_email(user: dict[str, Any]) -> str | None:
    """Best-known email for the photo row; a Graph outage never blocks an upload."""
    try:
        return resolve_email(user).email
    except GraphError as exc:
        log.warning("upload without owner email: %s", exc.code)
        return None


def _store(oid: str, owner_email: str | None, pending: Pending) -> Photo:
    """Blobs first, the image and its thumbnail at once, then the row; if anything fails, the
    blobs go."""
    image = pending.image
    name = blob_name(oid, pending.id, image.extension)
    thumb_name = blob_name(oid, pending.id, "thumb.jpg")
    blobs = get_blobs()
    with futures.ThreadPoolExecutor(1, thread_name_prefix="upload-thumbnail") as pool:
        thumbnail = submit_in_context(
            pool,
            blobs.upload,
            thumb_name,
            image.thumbnail,
            length=len(image.thumbnail),
            content_type="image/jpeg",
        )
        try:
            if pending.staged is not None:
                pending.staged.commit(content_type=image.content_type)
            else:
                blobs.upload(name, image.data, length=image.size, content_type=image.content_type)
            thumbnail.result()
            return get_db().insert_photo(
                Photo(
                    id=pending.id,
                    owner_oid=oid,
                    owner_email=owner_email,
                    blob_name=name,
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
            futures.wait([thumbnail])
            _delete_blobs(name, thumb_name)
            raise


def _delete_blobs(*names: str | None) -> None:
    """Delete each blob named; one that cannot be deleted now is left for reconcile."""
    for name in names:
        if name:
            try:
                get_blobs().delete(name)
            except ServiceError:
                log.warning("orphan blob left for reconcile: %s", name)


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
    photo = _own_photo(photo_id, "No such photo.")
    return redirect(get_blobs().read_url(photo.blob_name), code=302)


@bp.delete("/photos/<photo_id>")
@login_required
def delete_photo(photo_id: str) -> Any:
    user = g.user
    # Row first: a failure after it leaves only an orphan blob, which reconcile removes.
    photo = get_db().delete_photo(user["oid"], _photo_id(photo_id))
    if photo is None:
        abort(404, description="No such photo.")
    _delete_blobs(photo.blob_name, photo.thumb_blob_name)
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
