// Small, CSP-friendly helpers for htmx: tell the user when a request failed, keep their entries.
(function () {
  "use strict";
  function say(text) {
    var region = document.getElementById("flash");
    if (!region) { return; }
    var p = document.createElement("p");
    p.className = "flash flash-error";
    p.textContent = text;
    region.replaceChildren(p);
  }
  document.addEventListener("htmx:sendError", function () {
    say(document.body.dataset.msgOffline);
  });
  document.addEventListener("htmx:responseError", function (event) {
    if (event.detail.xhr && event.detail.xhr.status === 422) { return; }
    say(document.body.dataset.msgError);
  });
  // After a form error swap, move focus to the error summary so keyboard and screen reader users hear it.
  // (With an outerHTML swap, detail.target is the old, detached element: look in the document.)
  document.addEventListener("htmx:afterSwap", function (event) {
    if (!event.detail.xhr || event.detail.xhr.status !== 422) { return; }
    var summary = document.querySelector(".error-summary");
    if (summary) { summary.focus(); }
  });
  // Sign-out on a shared phone: forget the files kept on this device for resumable uploads (Uppy's
  // Golden Retriever store in IndexedDB, tus-js-client's resume URLs and our list of finished uploads in
  // localStorage). Started when the sign-out form is sent (never holding it up) and done again by the
  // page that follows, which the server marks with data-drafts-done="*" (as static/js/drafts.js does for
  // typed forms), so a deletion cut short by the navigation is finished there.
  function clearUploads() {
    try {
      for (var i = localStorage.length - 1; i >= 0; i--) {
        var key = localStorage.key(i);
        if (key && /^(tus::|uppyState:|integplan-upload)/.test(key)) { localStorage.removeItem(key); }
      }
    } catch (e) { /* no storage: nothing kept */ }
    try {
      if (window.indexedDB) { window.indexedDB.deleteDatabase("uppy-blobs"); }
    } catch (e) { /* nothing kept */ }
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.hasAttribute("data-sign-out")) { clearUploads(); }
  });
  function afterSignOut() {
    if ((document.body.dataset.draftsDone || "").split(/\s+/).indexOf("*") >= 0) { clearUploads(); }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", afterSignOut);
  } else {
    afterSignOut();
  }
})();
