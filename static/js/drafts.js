// Nothing typed is lost: forms with data-draft-key keep every field on the device (IndexedDB through
// idb-keyval) a moment after each change, and get it back when the page is opened again — after a tab
// close, a crash or a restart, online or offline. Files are not kept here (the upload helpers do that).
//
// Server values win: after a form error (data-draft-state="error") the page shows what was sent and
// nothing is restored; on a fresh page the device copy fills every field when it is newer than the
// server's draft (data-draft-saved-at, ms), else only the empty fields. The copy is removed when the
// server has the submission (the next page names it in <body data-drafts-done>) and at sign-out (all of
// them: phones are shared). A leave warning while something typed is not yet on the server.
(function () {
  "use strict";
  var kv = window.idbKeyval;
  var store = null;
  var DELAY = 400;  // ms after the last keystroke
  var SKIP = { hidden: 1, file: 1, submit: 1, button: 1, reset: 1, password: 1, image: 1 };

  function db() {
    if (!kv || !window.indexedDB) { return null; }
    if (!store) {
      try { store = kv.createStore("integplan-drafts", "forms"); } catch (e) { return null; }
    }
    return store;
  }

  function fieldsOf(form) {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.name && !SKIP[el.type] && el.name !== "csrf_token" && !el.disabled;
    });
  }

  function snapshot(form) {
    var values = {};
    fieldsOf(form).forEach(function (el) {
      if (el.type === "checkbox") {
        values[el.name] = el.checked;
      } else if (el.type === "radio") {
        if (el.checked) { values[el.name] = el.value; } else if (!(el.name in values)) { values[el.name] = null; }
      } else if (el.tagName === "SELECT" && el.multiple) {
        values[el.name] = Array.prototype.filter.call(el.options, function (o) { return o.selected; })
          .map(function (o) { return o.value; });
      } else {
        values[el.name] = el.value;
      }
    });
    return values;
  }

  function values(form) { return JSON.stringify(snapshot(form)); }

  function isEmpty(el) {
    if (el.type === "checkbox") { return !el.checked; }
    if (el.type === "radio") { return !el.form.querySelector("input[type=radio][name='" + el.name + "']:checked"); }
    if (el.tagName === "SELECT") { return el.value === "" || (el.dataset.empty !== undefined && el.value === el.dataset.empty); }
    return el.value === "";
  }

  function put(el, value) {
    if (el.type === "checkbox") { el.checked = !!value; return; }
    if (el.type === "radio") { el.checked = value !== null && el.value === value; return; }
    if (el.tagName === "SELECT" && el.multiple) {
      Array.prototype.forEach.call(el.options, function (o) { o.selected = (value || []).indexOf(o.value) >= 0; });
      return;
    }
    if (el.tagName === "SELECT" && !Array.prototype.some.call(el.options, function (o) { return o.value === value; })) {
      return;  // a choice the page no longer offers
    }
    el.value = value === null || value === undefined ? "" : value;
  }

  function restore(form, saved, everything) {
    var changed = false;
    var done = {};
    fieldsOf(form).forEach(function (el) {
      if (!(el.name in saved.values)) { return; }
      if (el.type === "radio") {
        if (done[el.name] === undefined) { done[el.name] = everything || isEmpty(el); }
        if (!done[el.name]) { return; }
      } else if (!everything && !isEmpty(el)) {
        return;
      }
      var before = el.type === "checkbox" || el.type === "radio" ? el.checked : el.value;
      put(el, saved.values[el.name]);
      var after = el.type === "checkbox" || el.type === "radio" ? el.checked : el.value;
      if (before !== after) { changed = true; }
    });
    return changed;
  }

  var watched = [];  // one state per form, see watch()

  function watch(form) {
    if (watched.some(function (w) { return w.form === form; })) { return; }
    var key = form.dataset.draftKey;
    var timer = null;
    // onServer: the form's values as the server has them (as the page came, or as the autosave last sent
    // them); leaving: a submission is on its way (no warning for the page it leads to).
    var state = { form: form, onServer: values(form), sending: null, leaving: false, restoring: false,
                  flush: flush };
    watched.push(state);

    function save() {
      timer = null;
      // A submission is on its way: the device already holds what it sends (see leave()), and a write
      // now could land after the next page has removed the copy.
      if (state.leaving) { return; }
      var s = db();
      if (!s) { return; }
      kv.set(key, { values: snapshot(form), saved: Date.now() }, s).then(function () {
        form.setAttribute("data-device-saved", String(Date.now()));
      }, function () { /* private mode or a full disk: the page still has everything */ });
    }

    function changed() {
      if (state.restoring) { return; }
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(save, DELAY);
    }

    function flush() { if (timer) { clearTimeout(timer); save(); } }

    // The form is being submitted: write what it sends now, then no more until it comes back.
    function leave() {
      if (timer) { clearTimeout(timer); timer = null; }
      save();
      state.leaving = true;
    }

    // The submission failed (no network, a form error): keep saving what is typed.
    function stay() {
      if (state.leaving) { state.leaving = false; changed(); }
    }

    form.addEventListener("input", changed);
    form.addEventListener("change", changed);

    // The visit form's autosave (htmx on the form itself): what it sent is on the server once it answers.
    // Its submit button (htmx too) leads to the next page, or back here with an error.
    // beforeSend, not beforeRequest: checks.js may still stop a submission at beforeRequest.
    form.addEventListener("htmx:beforeSend", function (event) {
      if (event.detail.elt === form) {
        state.sending = values(form);
      } else {
        leave();
        // An autosave still on its way would only store what the submission now sends.
        if (window.htmx) { window.htmx.trigger(form, "htmx:abort"); }
      }
    });
    // The submission was saved (HX-Redirect): drop the device copy before leaving, rather than only on the
    // next page. That page also names it (data-drafts-done), but the name travels in the session cookie,
    // and an autosave answered at the same moment can carry the cookie from before the submission.
    form.addEventListener("htmx:beforeOnLoad", function (event) {
      var xhr = event.detail.xhr;
      var target = xhr && xhr.getResponseHeader("HX-Redirect");
      if (event.detail.elt === form || !target || !db()) { return; }
      event.preventDefault();
      var go = function () { window.location.href = target; };
      kv.del(key, db()).then(go, go);
    });
    form.addEventListener("htmx:afterRequest", function (event) {
      if (event.detail.elt === form) {
        if (event.detail.successful && state.sending !== null) { state.onServer = state.sending; }
      } else if (!(event.detail.xhr && event.detail.xhr.getResponseHeader("HX-Redirect"))) {
        stay();
      }
    });
    // A plain or upload.js submission (checks.js stops the event first when something is missing).
    form.addEventListener("submit", function (event) {
      if (!event.defaultPrevented) { leave(); }
    });
    // upload.js marks the form busy while it sends, and clears the mark when the sending failed.
    new MutationObserver(function () {
      if (form.getAttribute("aria-busy") !== "true") { stay(); }
    }).observe(form, { attributes: true, attributeFilter: ["aria-busy"] });

    var s = db();
    if (!s) { return; }
    if (form.dataset.draftState === "error") {
      changed();  // the page holds what was sent: keep that as the device copy
      return;
    }
    kv.get(key, s).then(function (saved) {
      if (!saved || !saved.values) { form.setAttribute("data-device-restored", "none"); return; }
      var server = parseInt(form.dataset.draftSavedAt || "0", 10) || 0;
      var restoredSomething = restore(form, saved, saved.saved > server);
      form.setAttribute("data-device-restored", restoredSomething ? "yes" : "none");
      if (restoredSomething) {
        tell(form, state, saved);
        // Not on the server yet. The change event lets the visit form's autosave take it there.
        state.restoring = true;
        try { form.dispatchEvent(new Event("change", { bubbles: true })); } finally { state.restoring = false; }
      }
    }, function () { form.setAttribute("data-device-restored", "none"); });
  }

  // Say that the values came from the device, with a way to drop them.
  function tell(form, state, saved) {
    if (!form.dataset.msgRestored) { return; }
    var box = document.createElement("div");
    box.className = "flash flash-info device-restored";
    box.setAttribute("role", "status");
    var p = document.createElement("p");
    p.textContent = form.dataset.msgRestored;
    box.appendChild(p);
    if (form.dataset.msgDiscard) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.textContent = form.dataset.msgDiscard;
      button.addEventListener("click", function () {
        state.leaving = true;
        var s = db();
        var go = function () { window.location.reload(); };
        (s ? kv.del(form.dataset.draftKey, s) : Promise.resolve()).then(go, go);
      });
      box.appendChild(button);
    }
    form.insertBefore(box, form.firstChild);
  }

  function live() {
    watched = watched.filter(function (w) { return w.form.isConnected; });
    return watched;
  }

  // The tab is hidden or closed: write now rather than after the delay.
  function flushAll() { live().forEach(function (w) { w.flush(); }); }
  window.addEventListener("pagehide", flushAll);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") { flushAll(); }
  });

  window.addEventListener("beforeunload", function (event) {
    var unsent = live().some(function (w) { return !w.leaving && values(w.form) !== w.onServer; });
    if (!unsent) { return; }
    event.preventDefault();
    event.returnValue = "";  // older browsers need a value to show their own warning
  });

  function forget(keys) {
    var s = db();
    if (!s || !keys.length) { return Promise.resolve(); }
    return kv.delMany(keys, s).catch(function () {});
  }

  function forgetAll() {
    var s = db();
    if (!s) { return Promise.resolve(); }
    return kv.clear(s).catch(function () {});
  }

  // Sign-out removes every device copy (a shared phone's next user sees none); discarding a draft
  // (data-discard-draft="<key>") removes that one. Started here, and done again by the page that follows
  // (the server names "*" or the key in data-drafts-done), so the form is not held up.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || event.defaultPrevented) { return; }
    var signout = form.hasAttribute("data-sign-out");
    if (!signout && !form.dataset.discardDraft) { return; }
    live().forEach(function (w) { w.leaving = true; });  // what is not on the server is given up here
    if (signout) { forgetAll(); } else { forget([form.dataset.discardDraft]); }
  });

  function start() {
    var done = (document.body.dataset.draftsDone || "").split(/\s+/).filter(Boolean);
    var ready = done.indexOf("*") >= 0 ? forgetAll() : forget(done);
    ready.then(function () {
      document.body.setAttribute("data-drafts-cleared", "1");
      function scan() {
        Array.prototype.forEach.call(document.querySelectorAll("form[data-draft-key]"), function (form) {
          watch(form);
        });
      }
      scan();
      // A form error swaps in a new form (htmx, upload.js): watch that one too.
      new MutationObserver(scan).observe(document.body, { childList: true, subtree: true });
    });
  }

  // After DOMContentLoaded, so htmx (an earlier deferred script) has set up the visit form's autosave
  // before a restored copy is handed to it. A deferred script runs while readyState is "interactive".
  var started = false;
  function once() { if (!started) { started = true; start(); } }
  if (document.readyState === "complete") {
    once();
  } else {
    document.addEventListener("DOMContentLoaded", once);
    window.addEventListener("load", once);
  }
})();
