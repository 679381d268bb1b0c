// Resumable uploads (issue 12, item 2): every `.upload-field` on the page gets its own Uppy with the tus
// uploader and Golden Retriever. A chosen file leaves the plain <input type=file> (so the form does not send
// it a second time), is shrunk by our rules, and starts uploading at once, separately from the form, with
// its own progress. A dropped link, a reload or a browser restart resumes from the last byte the server
// acknowledged. When the upload is complete, the server's card (with the opaque upload id the form refers to)
// replaces the provisional one. Without this script the plain multipart form still works.
//
// Built by `make assets` (esbuild, IIFE, minified) into static/vendor/uploads.js. CSP-safe: no inline code,
// no eval, no inline styles (the `hidden` attribute and classes only).
import Uppy from "@uppy/core";
import Tus from "@uppy/tus";
import GoldenRetriever from "@uppy/golden-retriever";

// tus PATCH size. A piece the link drops half-way is sent again from the server's offset, so on a slow link
// the pieces are small (10 s each at 2G's 50 kbit/s up: the progress moves, a reload loses little); on a fast one larger
// (fewer round trips).
const SLOW_CHUNK = 64 * 1024;
const FAST_CHUNK = 512 * 1024;
// A dropped link is retried for a long while (about 20 minutes), and not counted while the browser is offline.
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000].concat(new Array(36).fill(30000));
const DONE_KEY = "integplan-uploads:";  // localStorage: completed upload ids per field, until the form is sent
const META = ["filename", "filetype", "purpose", "case", "receipt", "visit"];

// Photos are shrunk by the rules both upload paths share (static/js/shrink.js, loaded on every page).
const shrinking = () => window.integplanShrink;
function slowLink() { return shrinking() ? shrinking().slowLink() : false; }
function shrink(blob, name) { return shrinking() ? shrinking().shrink(blob, name) : Promise.resolve(null); }

function csrfToken() {
  try {
    const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    if (headers["X-CSRFToken"]) { return headers["X-CSRFToken"]; }
  } catch (e) { /* fall through */ }
  const input = document.querySelector("input[name=csrf_token]");
  return input ? input.value : "";
}

// The translated messages, from the script element (templates/uploads/_script.html).
const MSG = (() => {
  const el = document.querySelector("script[data-msg-wait]");
  return el ? el.dataset : {};
})();

function msg(field, key) {
  return field.dataset["msg" + key] || MSG["msg" + key] || "";
}

function percent(done, total) {
  return total > 0 ? Math.min(100, Math.floor(100 * done / total)) : 0;
}

function readList(key) {
  try { return JSON.parse(localStorage.getItem(key) || "[]"); } catch (e) { return []; }
}

function writeList(key, list) {
  try {
    if (list.length) { localStorage.setItem(key, JSON.stringify(list)); } else { localStorage.removeItem(key); }
  } catch (e) { /* private mode or full: the server-rendered cards still work */ }
}

const fields = [];

class Field {
  constructor(el) {
    this.el = el;
    this.input = el.querySelector("input[type=file]");
    this.list = el.querySelector(".upload-list");
    if (!this.list) {
      this.list = document.createElement("ul");
      this.list.className = "upload-list";
      el.appendChild(this.list);
    }
    this.status = document.createElement("p");
    this.status.className = "upload-status";
    this.status.setAttribute("role", "status");
    this.status.hidden = true;
    el.appendChild(this.status);
    this.fetching = new Set();  // upload ids whose card is on its way
    this.retrying = new Set();
    const d = el.dataset;
    this.endpoint = new URL(d.tusEndpoint || "/uploads/", location.href).href;
    this.cardUrl = d.cardUrl || "/uploads/__ID__/card";
    const scope = [d.purpose, d.case || "", d.receipt || "", d.visit || ""].join("-");
    this.key = DONE_KEY + scope;
    const meta = { purpose: d.purpose || "" };
    ["case", "receipt", "visit"].forEach((k) => { if (d[k]) { meta[k] = d[k]; } });
    this.uppy = new Uppy({
      id: "upl-" + scope,  // Golden Retriever's store name: the same field finds its files after a reload
      meta,
      allowMultipleUploadBatches: true,
      restrictions: d.maxSize ? { maxFileSize: Number(d.maxSize) } : {},
    });
    this.uppy.addPreProcessor((ids) => this.preprocess(ids));
    this.uppy.use(Tus, {
      endpoint: this.endpoint,
      headers: () => ({ "X-CSRFToken": csrfToken() }),
      chunkSize: FAST_CHUNK,  // per file in preprocess()
      retryDelays: RETRY_DELAYS,
      removeFingerprintOnSuccess: true,
      storeFingerprintForResuming: true,
      allowedMetaFields: META.filter((k) => k in meta || k === "filename" || k === "filetype"),
      limit: 2,
      onShouldRetry: (err, attempt, opts, next) => {
        const status = err && err.originalResponse ? err.originalResponse.getStatus() : 0;
        if (status === 404 || status === 410 || status === 413 || status === 403) { return false; }
        return next(err);
      },
    });
    this.uppy.use(GoldenRetriever, { serviceWorker: false });
    this.bind();
  }

  bind() {
    const uppy = this.uppy;
    if (this.input) {
      this.input.addEventListener("change", () => this.take());
    }
    uppy.on("restored", () => this.restored());
    uppy.on("file-added", (file) => { this.card(file); mark(); });
    uppy.on("preprocess-progress", (file) => this.progress(file, 0, msg(this.el, "Preparing")));
    uppy.on("upload-progress", (file, p) => {
      this.progress(file, percent(p.bytesUploaded, p.bytesTotal));
    });
    uppy.on("upload-success", (file, response) => this.success(file, response));
    uppy.on("upload-error", (file, error, response) => this.failed(file, response));
    uppy.on("file-removed", (file) => {
      const li = this.cardOf(file.id);
      if (li && !li.hasAttribute("data-upload-id")) { li.remove(); }
      changed();
    });
    uppy.on("restriction-failed", (file) => {
      this.say(msg(this.el, "TooBig") || msg(this.el, "Failed"));
      if (file) { this.cardOf(file.id)?.remove(); }
    });
    // Cards the server rendered (after a form error) are this field's completed uploads too.
    const done = readList(this.key);
    this.list.querySelectorAll("[data-upload-id]").forEach((li) => {
      if (!done.includes(li.dataset.uploadId)) { done.push(li.dataset.uploadId); }
    });
    writeList(this.key, done);
    // …and those completed before a reload that the server did not render (a plain GET of the form).
    done.forEach((token) => {
      if (!this.list.querySelector(`[data-upload-id="${CSS.escape(token)}"]`)) { this.fetchCard(token, null); }
    });
  }

  // Files chosen in the plain input: out of the input, into Uppy, uploading at once.
  take() {
    let files = Array.from(this.input.files || []);
    if (!files.length) { return; }
    if (!this.input.multiple) { files = files.slice(0, 1); }
    this.input.value = "";
    // The add-files form: the purpose is what its "Type of file" select says when the file is chosen.
    const select = this.el.dataset.purposeSelect ? document.getElementById(this.el.dataset.purposeSelect) : null;
    const meta = select && select.value ? { purpose: select.value } : {};
    files.forEach((f) => {
      try {
        this.uppy.addFile({ name: f.name, type: f.type, data: f, source: "Local", meta });
      } catch (e) {
        // The same file twice, or too big: Uppy's restriction-failed has said so.
      }
    });
    this.start();
  }

  start() {
    this.uppy.upload().catch(() => { /* the cards show each file's failure */ }).finally(changed);
    changed();
  }

  async preprocess(ids) {
    for (const id of ids) {
      const file = this.uppy.getFile(id);
      if (!file || file.meta.prepared || file.progress.uploadStarted) { continue; }
      this.uppy.emit("preprocess-progress", file, { mode: "indeterminate", message: "" });
      const small = await shrink(file.data, file.name);
      const data = small || file.data;
      const name = small ? small.name : file.name;
      const type = small ? small.type : (file.type || "application/octet-stream");
      this.uppy.setFileState(id, {
        data, name, type, size: data.size,
        progress: { ...this.uppy.getFile(id).progress, bytesTotal: data.size },
        meta: { ...file.meta, name, type, filename: name, filetype: type, prepared: "1" },
        // The link as it is now, not as it was when the page loaded.
        tus: { ...(file.tus || {}), chunkSize: slowLink() ? SLOW_CHUNK : FAST_CHUNK },
      });
      this.uppy.emit("preprocess-complete", this.uppy.getFile(id));
    }
  }

  restored() {
    // Golden Retriever put back the files of the last visit: show them, and carry on uploading.
    this.uppy.getFiles().forEach((file) => {
      if (file.isGhost) {
        this.say(msg(this.el, "Lost"));
        this.uppy.removeFile(file.id);
        return;
      }
      if (file.progress.uploadComplete && file.response && file.response.uploadURL) {
        this.success(file, file.response);
        return;
      }
      this.card(file);
      this.progress(file, percent(file.progress.bytesUploaded, file.progress.bytesTotal));
    });
    if (this.uppy.getFiles().length) { this.uppy.emit("restore-confirmed"); }
    changed();
  }

  cardOf(id) {
    return this.list.querySelector(`[data-file-id="${CSS.escape(id)}"]`);
  }

  // A provisional card: name, progress bar with its label, a status line, a remove button.
  card(file) {
    if (this.cardOf(file.id)) { return; }
    const li = document.createElement("li");
    li.className = "upload-card upload-card-pending";
    li.dataset.fileId = file.id;
    const barId = "upl-" + Math.random().toString(36).slice(2);
    const label = document.createElement("label");
    label.htmlFor = barId;
    label.className = "upload-name";
    label.textContent = file.name;
    const bar = document.createElement("progress");
    bar.id = barId;
    bar.max = 100;
    bar.value = 0;
    const state = document.createElement("span");
    state.className = "upload-state";
    state.textContent = msg(this.el, "Uploading");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "secondary";
    remove.dataset.uploadCancel = "";
    remove.textContent = msg(this.el, "Remove");
    remove.setAttribute("aria-label", msg(this.el, "Remove") + " " + file.name);
    li.append(label, bar, state, remove);
    this.list.appendChild(li);
  }

  progress(file, value, text) {
    const li = this.cardOf(file.id);
    if (!li) { return; }
    const bar = li.querySelector("progress");
    if (bar) { bar.value = value; }
    const state = li.querySelector(".upload-state");
    if (state) {
      state.textContent = text || (navigator.onLine === false ? msg(this.el, "Offline")
        : `${msg(this.el, "Uploading")} ${value} %`);
    }
    li.classList.remove("upload-card-failed");
  }

  failed(file) {
    const li = this.cardOf(file.id);
    if (!li) { return; }
    li.classList.add("upload-card-failed");
    const state = li.querySelector(".upload-state");
    if (state) { state.textContent = navigator.onLine === false ? msg(this.el, "Offline") : msg(this.el, "Failed"); }
    if (!li.querySelector("[data-upload-retry]")) {
      const retry = document.createElement("button");
      retry.type = "button";
      retry.className = "secondary";
      retry.dataset.uploadRetry = "";
      retry.textContent = msg(this.el, "Retry");
      li.insertBefore(retry, li.querySelector("[data-upload-cancel]"));
    }
    changed();
  }

  success(file, response) {
    const url = response && response.uploadURL;
    const token = url ? decodeURIComponent(new URL(url, location.href).pathname.replace(/\/+$/, "").split("/").pop()) : "";
    const done = readList(this.key);
    if (token && !done.includes(token)) { done.push(token); writeList(this.key, done); }
    const li = this.cardOf(file.id);
    if (li) {
      li.dataset.uploadId = token;
      const bar = li.querySelector("progress");
      if (bar) { bar.value = 100; }
      const state = li.querySelector(".upload-state");
      if (state) { state.textContent = msg(this.el, "Checking"); }
    }
    // Uploaded: Golden Retriever forgets the file; the card now stands for the server's upload. Not at once:
    // inside this event the tus uploader still listens for the removal and would terminate the upload.
    setTimeout(() => { if (this.uppy.getFile(file.id)) { this.uppy.removeFile(file.id); } }, 0);
    if (token) { this.fetchCard(token, li); }
    changed();
  }

  // The server's card replaces the provisional one; until then the form waits (the card carries the
  // upload's id the form sends).
  async fetchCard(token, placeholder, attempt = 0) {
    this.fetching.add(token);
    try {
      await this.loadCard(token, placeholder, attempt);
    } finally {
      if (!this.retrying.has(token)) { this.fetching.delete(token); }
      changed();
    }
  }

  async loadCard(token, placeholder, attempt) {
    const url = this.cardUrl.replace("__ID__", encodeURIComponent(token));
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } });
    } catch (e) {
      // Offline: try again when the link is back.
      this.retrying.add(token);
      window.addEventListener("online", () => {
        this.retrying.delete(token);
        this.fetchCard(token, placeholder);
      }, { once: true });
      return;
    }
    if (response.status === 404 || response.status === 410) {
      placeholder?.remove();
      writeList(this.key, readList(this.key).filter((t) => t !== token));
      changed();
      return;
    }
    if (!response.ok) {
      if (attempt < 5) {
        this.retrying.add(token);
        setTimeout(() => {
          this.retrying.delete(token);
          this.fetchCard(token, placeholder, attempt + 1);
        }, 2000 * (attempt + 1));
      }
      return;
    }
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.querySelector(".upload-card");
    if (!fresh) { return; }
    const node = document.importNode(fresh, true);
    const existing = this.list.querySelector(`[data-upload-id="${CSS.escape(token)}"]:not([data-file-id])`);
    if (placeholder && placeholder.isConnected) { placeholder.replaceWith(node); } else if (existing) {
      existing.replaceWith(node);
    } else { this.list.appendChild(node); }
    if (window.htmx) { window.htmx.process(node); }
  }

  // A completed upload's card: tus DELETE, then the card goes.
  async removeUpload(li) {
    const token = li.dataset.uploadId;
    const button = li.querySelector("[data-upload-remove]");
    if (button) { button.disabled = true; }
    try {
      const response = await fetch(new URL(encodeURIComponent(token), this.endpoint.replace(/\/?$/, "/")).href, {
        method: "DELETE", credentials: "same-origin",
        headers: { "Tus-Resumable": "1.0.0", "X-CSRFToken": csrfToken() },
      });
      if (!response.ok && response.status !== 404 && response.status !== 410) { throw new Error(String(response.status)); }
    } catch (e) {
      if (button) { button.disabled = false; }
      this.say(navigator.onLine === false ? msg(this.el, "Offline") : msg(this.el, "Failed"));
      return;
    }
    writeList(this.key, readList(this.key).filter((t) => t !== token));
    li.remove();
    changed();
  }

  say(text) {
    this.status.textContent = text || "";
    this.status.hidden = !text;
  }

  busy() {
    return this.fetching.size > 0 || this.uppy.getFiles().some((f) => !f.progress.uploadComplete);
  }

  failing() {
    return this.uppy.getFiles().some((f) => f.error);
  }
}

// The form: its submit waits while a file is still uploading (and goes once they are all done); a leave
// warning meanwhile.
const held = new Map();  // form -> submitter

function formBusy(form) {
  return fields.some((f) => form.contains(f.el) && f.busy());
}

function anyBusy() {
  return fields.some((f) => f.busy());
}

function waitBox(form, text) {
  let box = form.querySelector(".upload-wait");
  if (!text) { if (box) { box.remove(); } return; }
  if (!box) {
    box = document.createElement("div");
    box.className = "error-summary upload-wait";
    box.setAttribute("role", "alert");
    box.tabIndex = -1;
    form.insertBefore(box, form.firstChild);
  }
  const p = document.createElement("p");
  p.textContent = text;
  box.replaceChildren(p);
  return box;
}

// While a field has files in flight, the loader (static/js/uploads-loader.js) loads the bundle at once on
// the next visit, so that Golden Retriever can bring them back.
function mark() {
  fields.forEach((f) => {
    const key = "integplan-uploading:" + f.key.slice(DONE_KEY.length);
    try {
      if (f.uppy.getFiles().length) { localStorage.setItem(key, "1"); } else { localStorage.removeItem(key); }
    } catch (e) { /* no storage */ }
  });
}

function changed() {
  mark();
  held.forEach((submitter, form) => {
    if (formBusy(form)) { return; }
    const failing = fields.some((f) => form.contains(f.el) && f.failing());
    held.delete(form);
    if (failing) { waitBox(form, MSG.msgFailed); return; }
    waitBox(form, "");
    if (submitter && submitter.isConnected) { form.requestSubmit(submitter); } else { form.requestSubmit(); }
  });
}

function forget(form) {
  fields.forEach((f) => { if (form.contains(f.el)) { writeList(f.key, []); } });
}

// Capture phase: before static/js/upload.js (which sends data-upload forms by XMLHttpRequest) sees it.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !fields.some((f) => form.contains(f.el))) { return; }
  if (formBusy(form)) {
    event.preventDefault();
    event.stopImmediatePropagation();
    held.set(form, event.submitter || null);
    const box = waitBox(form, MSG.msgWait);
    if (box) { box.focus(); }
    return;
  }
  waitBox(form, "");
  // A plain form post: the server has the uploads' ids now (and lists their cards again after a form
  // error). A data-upload form is sent by upload.js, which says when the server has saved it.
  if (!form.hasAttribute("data-upload")) { forget(form); }
}, true);
document.addEventListener("upload:saved", (event) => {
  if (event.target instanceof HTMLFormElement) { forget(event.target); }
});

document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (!target) { return; }
  const field = fields.find((f) => f.el.contains(target));
  if (!field) { return; }
  const li = target.closest(".upload-card");
  if (!li) { return; }
  if (target.closest("[data-upload-remove]")) {
    event.preventDefault();
    field.removeUpload(li);
  } else if (target.closest("[data-upload-cancel]")) {
    event.preventDefault();
    if (li.dataset.fileId && field.uppy.getFile(li.dataset.fileId)) {
      field.uppy.removeFile(li.dataset.fileId);  // tus terminates the unfinished upload on the server
    }
    li.remove();
    changed();
  } else if (target.closest("[data-upload-retry]")) {
    event.preventDefault();
    target.closest("[data-upload-retry]").remove();
    field.uppy.retryUpload(li.dataset.fileId).catch(() => {}).finally(changed);
  }
});

window.addEventListener("beforeunload", (event) => {
  if (anyBusy()) {
    event.preventDefault();
    event.returnValue = "";
  }
});

// Offline: pause (the piece in flight is lost anyway) and say so; online: carry on from the server's offset.
window.addEventListener("offline", () => {
  fields.forEach((f) => {
    if (!f.busy()) { return; }
    f.uppy.pauseAll();
    f.say(msg(f.el, "Offline"));
    f.uppy.getFiles().forEach((file) => {
      const state = f.cardOf(file.id)?.querySelector(".upload-state");
      if (state && !file.progress.uploadComplete) { state.textContent = msg(f.el, "Offline"); }
    });
  });
});
window.addEventListener("online", () => {
  fields.forEach((f) => {
    f.say("");
    if (!f.busy()) { return; }
    f.uppy.resumeAll();
    if (f.failing()) { f.uppy.retryAll().catch(() => {}).finally(changed); }
  });
});

function init() {
  // A form swapped in after a form error (upload.js, htmx) brings new upload fields; the old ones are gone
  // (their files had all been uploaded: the form could not be sent before).
  for (let i = fields.length - 1; i >= 0; i--) {
    if (!fields[i].el.isConnected) { fields.splice(i, 1); }
  }
  document.querySelectorAll(".upload-field").forEach((el) => {
    if (el.dataset.uploadReady) { return; }
    el.dataset.uploadReady = "1";
    const field = new Field(el);
    fields.push(field);
    // Chosen before this bundle had loaded (static/js/uploads-loader.js loads it on demand). At once: a
    // form the loader held is sent right after this bundle has run, and must find the files busy.
    if (field.input && field.input.files && field.input.files.length) { field.take(); }
  });
}

function start() {
  init();
  new MutationObserver((records) => {
    if (records.some((r) => Array.from(r.addedNodes).some((n) => n instanceof Element &&
        (n.matches(".upload-field") || n.querySelector(".upload-field"))))) { init(); }
  }).observe(document.body, { childList: true, subtree: true });
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
