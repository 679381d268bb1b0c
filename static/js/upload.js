// Receipt forms on weak links: keep everything typed if sending fails. Forms marked data-upload work
// without this script too (plain multipart POST); with it they are sent by XMLHttpRequest. Their file
// fields with resumable uploads (.upload-field, static/js/src/uploads.js) have sent their files by tus
// already (shrunk there, with their own progress); a file field without them is shrunk here and its
// upload shown by the form's progress bar. CSP-safe: no inline code, no styles.
(function () {
  "use strict";
  // A large photo made smaller first (static/js/shrink.js); anything else as it is.
  function shrink(file) {
    var tool = window.integplanShrink;
    if (!tool) { return Promise.resolve(file); }
    return tool.shrink(file, file.name).then(function (small) { return small || file; });
  }

  function buildData(form) {
    var data = new FormData(form);
    var jobs = [];
    Array.prototype.forEach.call(form.querySelectorAll("input[type=file]"), function (input) {
      // A file field with resumable uploads (static/js/src/uploads.js): its files went by tus, already
      // shrunk; the form sends only their ids.
      if (!input.name || input.closest(".upload-field[data-upload-ready]")) { return; }
      data.delete(input.name);
      Array.prototype.forEach.call(input.files || [], function (file) {
        jobs.push(shrink(file).then(function (small) { return [input.name, small]; }));
      });
    });
    return Promise.all(jobs).then(function (files) {
      files.forEach(function (pair) { data.append(pair[0], pair[1], pair[1].name); });
      return data;
    });
  }

  function say(form, text) {
    var box = form.querySelector(".upload-failed");
    if (!box) {
      box = document.createElement("div");
      box.className = "error-summary upload-failed";
      box.setAttribute("role", "alert");
      box.tabIndex = -1;
      form.insertBefore(box, form.firstChild);
    }
    var p = document.createElement("p");
    p.textContent = text;
    box.replaceChildren(p);
    box.focus();
  }

  // The part of the page the server answers with: the form's wrapper (new/edit) or the whole receipt.
  function container(form) {
    var el = form.parentElement;
    while (el && !el.id) { el = el.parentElement; }
    return el;
  }

  function swap(form, html) {
    var target = container(form);
    if (!target) { return false; }
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.getElementById(target.id);
    if (!fresh) { return false; }
    target.replaceWith(fresh);
    if (window.htmx) { window.htmx.process(fresh); }
    var summary = fresh.querySelector(".error-summary");
    if (summary) { summary.focus(); }
    return true;
  }

  function send(form, submitter, data) {
    var progress = form.querySelector(".upload-field[data-upload-ready]") ? null : form.querySelector(".upload-progress");
    var bar = progress && progress.querySelector("progress");
    var failed = form.dataset.msgFailed || document.body.dataset.msgError;
    var xhr = new XMLHttpRequest();

    function done() {
      form.removeAttribute("aria-busy");
      if (submitter) { submitter.disabled = false; }
      if (progress) { progress.hidden = true; }
    }

    xhr.open("POST", form.action);
    xhr.setRequestHeader("HX-Request", "true");
    xhr.upload.addEventListener("progress", function (event) {
      if (bar && event.lengthComputable) { bar.value = Math.round(100 * event.loaded / event.total); }
    });
    xhr.addEventListener("load", function () {
      var target = xhr.getResponseHeader("HX-Redirect");
      if (target) {
        if (bar) { bar.value = 100; }
        form.dispatchEvent(new CustomEvent("upload:saved", { bubbles: true }));
        window.location.assign(target);
        return;
      }
      done();
      if ((xhr.status === 422 || xhr.status === 409 || xhr.status === 200) && swap(form, xhr.responseText)) {
        return;
      }
      say(form, failed);
    });
    ["error", "timeout", "abort"].forEach(function (name) {
      xhr.addEventListener(name, function () { done(); say(form, failed); });
    });
    if (data) {
      if (submitter && submitter.name) { data.append(submitter.name, submitter.value); }
      xhr.send(data);
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-upload") || !window.FormData) { return; }
    if (event.defaultPrevented) { return; }  // held by uploads.js until its files are uploaded
    if (form.getAttribute("aria-busy") === "true") { event.preventDefault(); return; }
    event.preventDefault();
    var submitter = event.submitter || form.querySelector("[type=submit]");
    form.setAttribute("aria-busy", "true");
    if (submitter) { submitter.disabled = true; }
    var progress = form.querySelector(".upload-field[data-upload-ready]") ? null : form.querySelector(".upload-progress");
    if (progress) {
      progress.hidden = false;
      var bar = progress.querySelector("progress");
      if (bar) { bar.value = 0; }
    }
    buildData(form).then(function (data) { send(form, submitter, data); }, function () {
      form.removeAttribute("aria-busy");
      if (submitter) { submitter.disabled = false; }
      say(form, form.dataset.msgFailed || document.body.dataset.msgError);
    });
  });
})();
