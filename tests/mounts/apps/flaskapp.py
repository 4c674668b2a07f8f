"""A small Flask application for the WSGI mount tests: a form, an upload, url_for."""

from __future__ import annotations

import hashlib

from flask import Flask, request, url_for

app = Flask(__name__)


@app.get("/")
def index() -> str:
    """A page with links made by url_for (they must carry the mount prefix)."""
    return f'<a href="{url_for("form")}">form</a> <a href="{url_for("upload")}">upload</a>'


@app.route("/form", methods=["GET", "POST"])
def form() -> str:
    """Greet whoever the form names."""
    if request.method == "POST":
        return f"hello {request.form['name']}, you are {request.form['age']}"
    return '<form method="post"><input name="name"><input name="age"></form>'


@app.post("/upload")
def upload() -> dict[str, object]:
    """Report the uploaded file's name, size and digest."""
    file = request.files["file"]
    data = file.read()
    return {
        "filename": file.filename,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": request.form.get("note"),
    }
