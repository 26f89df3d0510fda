"""The source article's approach, kept only as the benchmark's point of comparison.

Never deployed and never imported by `app/`: it reads each upload whole into memory, fetches
one app-only token at import (which silently expires an hour later) and asks Graph on every
page view. Run by the benchmark as `gunicorn bench.naive_app:app`.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import msal
import requests
from azure.storage.blob import BlobServiceClient
from flask import Flask, jsonify, request

GRAPH_ENDPOINT = os.environ["GRAPH_ENDPOINT"].rstrip("/")

# The article's pattern: a token fetched once, at import time, and reused forever.
# (instance_discovery=False only keeps MSAL from asking login.microsoftonline.com about the
# fake authority: the benchmark never leaves the loopback interface.)
_msal_app = msal.ConfidentialClientApplication(
    os.environ["AZURE_AD_B2C_CLIENT_ID"],
    client_credential=os.environ["AZURE_AD_B2C_CLIENT_SECRET"],
    authority=f"https://{os.environ['AZURE_AUTHORITY_HOST']}/{os.environ['AZURE_AD_B2C_TENANT_ID']}",
    instance_discovery=False,
)
ACCESS_TOKEN = _msal_app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])[
    "access_token"
]

blob_service = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
CONTAINER = os.environ.get("AZURE_STORAGE_CONTAINER", "images")

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "<!doctype html><title>naive</title><p>gallery</p><script src='/static/app.js'></script>"


@app.post("/photos")
def upload() -> Any:
    file = request.files["file"]
    data = file.read()  # the whole upload in memory
    name = f"naive/{uuid.uuid4()}.jpg"
    blob_service.get_blob_client(CONTAINER, name).upload_blob(data)
    return jsonify({"name": name, "size": len(data)}), 201


@app.delete("/photos/<path:name>")
def delete(name: str) -> Any:
    blob_service.get_blob_client(CONTAINER, name).delete_blob()
    return "", 204


@app.get("/get-user-email/<user_id>")
def get_user_email(user_id: str) -> Any:
    # One Graph call per page view, with the import-time token.
    response = requests.get(
        f"{GRAPH_ENDPOINT}/v1.0/users/{user_id}",
        params={"$select": "mail,otherMails,identities"},
        headers={"Authorization": f"Bearer {ACCESS_TOKEN}"},
        timeout=10,
    )
    user = response.json()
    email = user.get("mail") or next(
        (i["issuerAssignedId"] for i in user.get("identities", []) if i.get("signInType") == "emailAddress"),
        None,
    )
    return jsonify({"email": email})


@app.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})
