// The gallery page: the user's email (the source article's fetchUserEmail, done right), uploads
// one request per file with a progress bar each, "Load more" through the API's cursor, and
// deletes after a confirmation; on the viewer, the arrow keys go to the previous and next photo.
// Without script the form posts every file in one request.
"use strict";

const SIGN_IN_AGAIN = "your session ended: sign in again";
const UNAVAILABLE = "the service is unavailable; try again in a moment";

async function fetchUserEmail() {
  const target = document.getElementById("userEmail");
  if (!target) return;
  try {
    const response = await fetch("/api/me/email", {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const body = await response.json();
    if (response.ok && body.email) {
      target.innerText = "User Email: " + body.email;
    } else {
      target.innerText = "Email not available";
    }
  } catch (error) {
    target.innerText = "Email not available";
  }
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : "";
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    return null;
  }
}

// Writes a refusal into `target` in plain words: a 401 gets a sign-in link, a 503 (or no
// answer at all) the advice to retry, anything else the API's own message.
function showFailure(target, status, body, prefix) {
  target.replaceChildren();
  let message;
  if (status === 401) {
    message = SIGN_IN_AGAIN;
  } else if (status === 503 || status === 0) {
    message = UNAVAILABLE;
  } else {
    message = (body && body.message) || "the request was refused (HTTP " + status + ")";
  }
  if (prefix && !message.startsWith(prefix)) message = prefix + ": " + message;
  target.append(message);
  if (status === 401) {
    const link = document.createElement("a");
    link.href = "/auth/login?next=/";
    link.className = "sign-in-again";
    link.textContent = "Sign in";
    target.append(" ", link);
  }
  target.hidden = false;
}

// --- the gallery ------------------------------------------------------------------------------

function gallery() {
  return document.getElementById("gallery");
}

function refreshEmptyState() {
  const list = gallery();
  const empty = list.children.length === 0;
  list.hidden = empty;
  document.getElementById("empty-gallery").hidden = !empty;
}

function photoItem(photo) {
  const template = document.getElementById("photo-template");
  const item = template.content.firstElementChild.cloneNode(true);
  item.setAttribute("data-photo-id", photo.id);
  item.querySelector("a.thumb").href = "/photos/" + encodeURIComponent(photo.id) + "/view";
  const image = item.querySelector("img");
  image.src = photo.thumbnail_url;
  image.alt = photo.filename;
  item.querySelector(".name").textContent = photo.filename;
  item.querySelector(".confirm").setAttribute("aria-label", "Delete " + photo.filename + "?");
  return item;
}

function addPhotos(photos, atTop) {
  const list = gallery();
  const items = photos
    .filter((photo) => !list.querySelector('li[data-photo-id="' + CSS.escape(photo.id) + '"]'))
    .map(photoItem);
  if (atTop) list.prepend(...items);
  else list.append(...items);
  refreshEmptyState();
}

function showGalleryMessage(text) {
  const message = document.getElementById("gallery-message");
  message.textContent = text;
  message.hidden = false;
}

async function loadMore(button) {
  const cursor = button.getAttribute("data-cursor");
  button.disabled = true;
  const message = document.getElementById("gallery-message");
  try {
    const response = await fetch("/api/photos?cursor=" + encodeURIComponent(cursor), {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const body = parseJson(await response.text());
    if (!response.ok || !body) {
      showFailure(message, response.status, body, "Could not load more photos");
      return;
    }
    addPhotos(body.photos, false);
    button.setAttribute("data-cursor", body.next_cursor || "");
    button.hidden = !body.next_cursor;
  } catch (error) {
    showFailure(message, 0, null, "Could not load more photos");
  } finally {
    button.disabled = false;
  }
}

// --- deleting -------------------------------------------------------------------------------

// Focus follows the question: onto "Yes" when it appears, back onto "Delete" when it goes.
function askToDelete(item, asking) {
  const button = item.querySelector("button.delete");
  button.hidden = asking;
  item.querySelector(".confirm").hidden = !asking;
  (asking ? item.querySelector("button.confirm-yes") : button).focus();
}

// After a removal, keyboard focus lands on the neighbouring photo rather than on nothing.
function focusAfterRemoving(item) {
  const neighbour = item.nextElementSibling || item.previousElementSibling;
  const target = neighbour ? neighbour.querySelector("a.thumb") : document.getElementById("file");
  if (target) target.focus();
}

async function deletePhoto(item) {
  const id = item.getAttribute("data-photo-id");
  const name = item.querySelector(".name").textContent;
  const error = item.querySelector(".error");
  const buttons = item.querySelectorAll("button");
  const focused = item.contains(document.activeElement); // disabling the buttons drops the focus
  buttons.forEach((button) => { button.disabled = true; });
  error.hidden = true;
  let status = 0;
  let body = null;
  try {
    const response = await fetch("/photos/" + encodeURIComponent(id), {
      method: "DELETE",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      credentials: "same-origin",
    });
    status = response.status;
    body = parseJson(await response.text());
  } catch (failure) {
    status = 0;
  }
  buttons.forEach((button) => { button.disabled = false; });
  if (status === 204 || status === 404) {
    if (focused) focusAfterRemoving(item);
    item.remove();
    refreshEmptyState();
    if (status === 404) showGalleryMessage(name + " was already deleted.");
    return;
  }
  askToDelete(item, false);
  showFailure(error, status, body, "Not deleted");
}

function onGalleryClick(event) {
  const button = event.target.closest("button");
  const item = button && button.closest("li[data-photo-id]");
  if (!item) return;
  if (button.classList.contains("delete")) askToDelete(item, true);
  else if (button.classList.contains("confirm-no")) askToDelete(item, false);
  else if (button.classList.contains("confirm-yes")) deletePhoto(item);
}

function onGalleryKeydown(event) {
  if (event.key !== "Escape") return;
  const confirm = event.target.closest(".confirm");
  const item = confirm && !confirm.hidden && confirm.closest("li[data-photo-id]");
  if (!item) return;
  event.preventDefault();
  askToDelete(item, false);
}

// --- the viewer -----------------------------------------------------------------------------

function onViewerKeydown(event) {
  if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey || event.defaultPrevented) return;
  if (event.target.closest("input, textarea, select, [contenteditable]")) return;
  const id = { ArrowLeft: "previous", ArrowRight: "next" }[event.key];
  const link = id && document.getElementById(id);
  if (!link) return;
  event.preventDefault();
  window.location.assign(link.href);
}

// --- uploading ------------------------------------------------------------------------------

function statusRow(file) {
  const row = document.createElement("li");
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = file.name;
  const progress = document.createElement("progress");
  progress.max = 100;
  progress.value = 0;
  const result = document.createElement("span");
  result.className = "result";
  result.textContent = "waiting";
  row.append(name, progress, result);
  document.getElementById("upload-status").append(row);
  return row;
}

// One file, one request: XMLHttpRequest, because fetch reports no upload progress.
function uploadFile(file, row) {
  return new Promise((resolve) => {
    const progress = row.querySelector("progress");
    const result = row.querySelector(".result");
    const data = new FormData();
    data.append("file", file, file.name);
    const request = new XMLHttpRequest();
    request.open("POST", "/photos");
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) progress.value = Math.round((100 * event.loaded) / event.total);
    });
    request.addEventListener("load", () => {
      const body = parseJson(request.responseText);
      if (request.status === 201 && body) {
        progress.value = 100;
        row.classList.add("stored");
        result.textContent = "stored";
        addPhotos(body.photos, true);
      } else {
        row.classList.add("refused");
        showFailure(result, request.status, body, file.name);
      }
      resolve();
    });
    request.addEventListener("error", () => {
      row.classList.add("refused");
      showFailure(result, 0, null, file.name);
      resolve();
    });
    result.textContent = "uploading";
    request.send(data);
  });
}

async function uploadAll(form, input, button) {
  const files = Array.from(input.files);
  if (files.length === 0) return;
  button.disabled = true;
  input.disabled = true;
  document.getElementById("upload-status").replaceChildren();
  const rows = files.map(statusRow);
  for (let index = 0; index < files.length; index += 1) {
    await uploadFile(files[index], rows[index]);
  }
  form.reset();
  input.disabled = false;
  button.disabled = false;
}

document.addEventListener("DOMContentLoaded", function () {
  fetchUserEmail();
  const list = gallery();
  if (list) {
    list.addEventListener("click", onGalleryClick);
    list.addEventListener("keydown", onGalleryKeydown);
  }
  if (document.getElementById("viewer-image")) document.addEventListener("keydown", onViewerKeydown);
  const more = document.getElementById("load-more");
  if (more) more.addEventListener("click", () => loadMore(more));
  const form = document.getElementById("upload-form");
  if (form) {
    const input = form.querySelector("input[type=file]");
    const button = form.querySelector("button[type=submit]");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      uploadAll(form, input, button);
    });
  }
});
