// davserver's file manager (docs/browser.md): plain JavaScript, no build step, no CDN.
// Every change is an ordinary WebDAV request (PUT, PATCH, MKCOL, MOVE, DELETE) sent with
// fetch() or XMLHttpRequest from this origin; the X-Davserver-UI header marks them.
"use strict";
(function () {
  const UI = { "X-Davserver-UI": "1" };
  const PIECE = 8 << 20; // bytes per piece of a resumable upload
  const RESUMABLE = 8 << 20; // files bigger than this are sent in pieces
  const body = document.body;
  const here = body.dataset.here || location.pathname;
  const table = document.getElementById("listing");
  const tbody = table ? table.tBodies[0] : null;

  function nameOf(row) { // percent-encoded in the page, so no hidden character is in it
    try { return decodeURIComponent(row.dataset.name); } catch (e) { return row.dataset.name; }
  }

  function rows() {
    return tbody ? Array.from(tbody.rows).filter((r) => !r.classList.contains("up")) : [];
  }

  // -- sorting and filtering (links and a form without JavaScript) ---------------------
  if (table) {
    let current = new URLSearchParams(location.search).get("sort") || "name";
    let descending = new URLSearchParams(location.search).get("order") === "desc";
    table.tHead.addEventListener("click", (event) => {
      const th = event.target.closest("th[data-sort]");
      if (!th) return;
      event.preventDefault();
      const key = th.dataset.sort;
      descending = key === current ? !descending : false;
      current = key;
      const value = (r) =>
        key === "size" ? Number(r.dataset.size) : key === "date" ? Number(r.dataset.mtime)
          : nameOf(r).toLowerCase();
      const sorted = rows().sort((a, b) => {
        if (a.dataset.dir !== b.dataset.dir) return b.dataset.dir - a.dataset.dir;
        const x = value(a), y = value(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
      });
      sorted.forEach((r) => tbody.appendChild(r));
      table.querySelectorAll("th[data-sort] a").forEach((a) => {
        a.textContent = a.textContent.replace(/ [▲▼]$/, "");
      });
      th.querySelector("a").textContent += descending ? " ▼" : " ▲";
    });
    const filter = document.querySelector(".filter input[type=search]");
    if (filter) {
      filter.addEventListener("input", () => {
        const wanted = filter.value.trim().toLowerCase();
        rows().forEach((r) => {
          r.hidden = wanted !== "" && !nameOf(r).toLowerCase().includes(wanted);
        });
      });
    }
  }

  // -- history pages: restore a version -------------------------------------------------
  document.querySelectorAll("button[data-restore]").forEach((button) => {
    button.addEventListener("click", async () => {
      if (!confirm("Restore this version? It becomes the file's newest version.")) return;
      const url = location.pathname + "?restore=" + encodeURIComponent(button.dataset.restore);
      const answer = await fetch(url, { method: "POST", headers: UI, credentials: "same-origin" });
      if (answer.ok) location.reload();
      else alert("Restoring failed: " + answer.status + " " + (await answer.text()));
    });
  });

  if (body.dataset.writable !== "1" || !table) return;

  // -- writing ---------------------------------------------------------------------------
  const tools = document.getElementById("tools");
  const uploads = document.getElementById("uploads");
  tools.hidden = false;
  tools.innerHTML =
    '<label>Upload files<input type="file" id="pick-files" multiple></label>' +
    '<label>Upload folder<input type="file" id="pick-folder" webkitdirectory multiple></label>' +
    '<button type="button" id="new-folder">New folder</button>' +
    '<span id="drop">or drop files and folders here</span>';

  function urlOf(relative) {
    return here + relative.split("/").map(encodeURIComponent).join("/");
  }

  async function dav(method, url, headers) {
    const answer = await fetch(url, {
      method, headers: Object.assign({}, UI, headers || {}), credentials: "same-origin",
    });
    return answer;
  }

  async function check(answer, what) {
    if (!answer.ok) throw new Error(what + ": " + answer.status + " " + (await answer.text()));
    return answer;
  }

  document.getElementById("new-folder").addEventListener("click", async () => {
    const name = prompt("Name of the new folder:");
    if (!name) return;
    try {
      await check(await dav("MKCOL", urlOf(name)), "New folder");
      location.reload();
    } catch (error) { alert(error.message); }
  });

  rows().forEach((row) => {
    const cell = row.querySelector("td.actions");
    const rename = document.createElement("button");
    rename.type = "button"; rename.textContent = "Rename"; rename.className = "rename";
    const remove = document.createElement("button");
    remove.type = "button"; remove.textContent = "Delete"; remove.className = "delete";
    cell.append(rename, remove);
    const name = nameOf(row);
    const isDir = row.dataset.dir === "1";
    const source = row.querySelector("a.entry").getAttribute("href");
    rename.addEventListener("click", async () => {
      const target = prompt("New name, or a path (a/b/name, /from/the/top):", name);
      if (!target || target === name) return;
      const path = target.startsWith("/") ? target.split("/").map(encodeURIComponent).join("/")
        : urlOf(target);
      try {
        await check(await dav("MOVE", source, {
          Destination: new URL(path, location.href).href, Overwrite: "F",
        }), "Rename");
        location.reload();
      } catch (error) { alert(error.message); }
    });
    remove.addEventListener("click", async () => {
      const what = isDir ? "the folder " + name + " and everything in it" : name;
      if (!confirm("Delete " + what + "?")) return;
      try {
        await check(await dav("DELETE", source), "Delete");
        location.reload();
      } catch (error) { alert(error.message); }
    });
  });

  // -- uploads ---------------------------------------------------------------------------
  const made = new Set();

  async function ensureFolders(relative) {
    const parts = relative.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const folder = parts.slice(0, i).join("/");
      if (made.has(folder)) continue;
      const answer = await dav("MKCOL", urlOf(folder) + "/");
      if (!answer.ok && answer.status !== 405) await check(answer, "Folder " + folder);
      made.add(folder);
    }
  }

  function line(name) {
    const div = document.createElement("div");
    div.className = "upload";
    div.innerHTML = "<span class=name></span><progress max=100 value=0></progress><span class=state></span>";
    div.querySelector(".name").textContent = name;
    uploads.appendChild(div);
    return {
      progress(done, total) {
        div.querySelector("progress").value = total ? (100 * done) / total : 100;
        div.querySelector(".state").textContent = Math.floor(total ? (100 * done) / total : 100) + " %";
      },
      finish(error) {
        const state = div.querySelector(".state");
        state.textContent = error ? "failed: " + error : "done";
        state.className = "state " + (error ? "failed" : "done");
      },
    };
  }

  function send(method, url, data, headers, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      Object.entries(Object.assign({}, UI, headers)).forEach(([k, v]) => xhr.setRequestHeader(k, v));
      xhr.upload.onprogress = (event) => onProgress(event.loaded);
      xhr.onload = () => resolve(xhr);
      xhr.onerror = () => reject(new Error("the connection was lost"));
      xhr.send(data);
    });
  }

  function uploadId(url, file) {
    const key = "davserver-upload " + url + " " + file.size + " " + file.lastModified;
    let id = localStorage.getItem(key);
    if (!id) {
      const bytes = crypto.getRandomValues(new Uint8Array(16));
      id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      localStorage.setItem(key, id);
    }
    return [key, id];
  }

  async function resumable(url, file, show) {
    const [key, id] = uploadId(url, file);
    const target = url + "?upload=" + id;
    let failures = 0;
    for (;;) {
      let offset = 0;
      const head = await dav("HEAD", target);
      if (head.ok) offset = Number(head.headers.get("X-Upload-Offset") || 0);
      try {
        while (offset < file.size || file.size === 0) {
          const end = Math.min(file.size, offset + PIECE);
          const xhr = await send("PATCH", target, file.slice(offset, end), {
            "Content-Type": "application/x-sabredav-partialupdate",
            "X-Update-Range": "bytes=" + offset + "-" + (end - 1),
            "X-Upload-Length": String(file.size),
          }, (loaded) => show.progress(offset + loaded, file.size));
          if (xhr.status === 416) { // the server holds another amount: go on from there
            offset = Number(xhr.getResponseHeader("X-Upload-Offset") || 0);
            continue;
          }
          if (xhr.status >= 300) throw Object.assign(new Error(xhr.status + " " + xhr.responseText), { final: true });
          offset = end;
          show.progress(offset, file.size);
          if (xhr.status === 201 || xhr.status === 204) { localStorage.removeItem(key); return; }
        }
      } catch (error) {
        if (error.final || ++failures > 5) throw error;
        await new Promise((r) => setTimeout(r, 1000 * failures)); // then ask where to go on
      }
    }
  }

  async function upload(file, relative) {
    const show = line(relative);
    try {
      await ensureFolders(relative);
      const url = urlOf(relative);
      if (file.size > RESUMABLE) {
        await resumable(url, file, show);
      } else {
        const xhr = await send("PUT", url, file, {}, (loaded) => show.progress(loaded, file.size));
        if (xhr.status >= 300) throw new Error(xhr.status + " " + xhr.responseText);
        show.progress(file.size, file.size);
      }
      show.finish(null);
      return true;
    } catch (error) {
      show.finish(error.message);
      return false;
    }
  }

  async function uploadAll(items) {
    let ok = true;
    for (const [file, relative] of items) ok = (await upload(file, relative)) && ok;
    if (ok) location.reload();
  }

  function picked(input) {
    return Array.from(input.files).map((f) => [f, f.webkitRelativePath || f.name]);
  }
  document.getElementById("pick-files").addEventListener("change", (e) => uploadAll(picked(e.target)));
  document.getElementById("pick-folder").addEventListener("change", (e) => uploadAll(picked(e.target)));

  async function entries(entry, prefix, out) {
    if (entry.isFile) {
      out.push([await new Promise((ok, fail) => entry.file(ok, fail)), prefix + entry.name]);
      return;
    }
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
      if (!batch.length) break;
      for (const child of batch) await entries(child, prefix + entry.name + "/", out);
    }
  }

  document.addEventListener("dragover", (event) => { event.preventDefault(); body.classList.add("dragging"); });
  document.addEventListener("dragleave", () => body.classList.remove("dragging"));
  document.addEventListener("drop", async (event) => {
    event.preventDefault();
    body.classList.remove("dragging");
    const found = [];
    const items = Array.from(event.dataTransfer.items || []);
    const roots = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
    if (roots.every((r) => r)) {
      for (const root of roots) await entries(root, "", found);
    } else {
      Array.from(event.dataTransfer.files).forEach((f) => found.push([f, f.name]));
    }
    uploadAll(found);
  });
})();
