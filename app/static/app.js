// The source article's fetchUserEmail, done right: the server decides which user is asked
// (the signed-in one), and a failure shows a message instead of breaking the page.
"use strict";

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

async function deletePhoto(button) {
  const id = button.getAttribute("data-photo-id");
  button.disabled = true;
  const response = await fetch("/photos/" + encodeURIComponent(id), {
    method: "DELETE",
    headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    credentials: "same-origin",
  });
  if (response.status === 204) {
    const item = button.closest("li");
    if (item) item.remove();
  } else {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", function () {
  fetchUserEmail();
  document.querySelectorAll("button.delete").forEach(function (button) {
    button.addEventListener("click", function () { deletePhoto(button); });
  });
});
