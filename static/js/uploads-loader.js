// Loads the resumable-upload bundle (static/vendor/uploads.js: Uppy, tus, Golden Retriever; about 40 KB
// compressed) only when it is needed, so the form itself is light on a 2G link: when a file field is touched
// (it loads while the person picks the file), when a file is chosen, or at once when this device has uploads
// to continue or list (a reload, a crash, a form error). A form sent while it loads waits for it.
// The messages for the bundle are this script element's data attributes. CSP-safe: a same-origin script.
(function () {
  "use strict";
  var me = document.currentScript;
  var src = me && me.getAttribute("data-bundle");
  var state = 0;  // 0: not loaded, 1: loading, 2: loaded
  var held = [];

  function load() {
    if (state || !src) { return; }
    state = 1;
    var script = document.createElement("script");
    script.src = src;
    script.onload = function () {
      state = 2;
      held.splice(0).forEach(function (pair) { pair[0].requestSubmit(pair[1] && pair[1].isConnected ? pair[1] : undefined); });
    };
    script.onerror = function () {
      // No bundle (offline): the plain form sends its files itself.
      state = 2;
      held.splice(0).forEach(function (pair) { pair[0].requestSubmit(pair[1] && pair[1].isConnected ? pair[1] : undefined); });
    };
    document.head.appendChild(script);
  }

  function kept() {
    try {
      for (var i = 0; i < localStorage.length; i++) {
        if (/^integplan-upload/.test(localStorage.key(i) || "")) { return true; }
      }
    } catch (e) { /* no storage */ }
    return false;
  }

  function inField(target) {
    return target instanceof Element && !!target.closest(".upload-field");
  }

  ["pointerdown", "focusin", "change", "dragenter"].forEach(function (name) {
    document.addEventListener(name, function (event) { if (inField(event.target)) { load(); } }, true);
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (state !== 1 || !(form instanceof HTMLFormElement) || !form.querySelector(".upload-field")) { return; }
    event.preventDefault();
    event.stopImmediatePropagation();
    held.push([form, event.submitter]);
  }, true);

  function start() {
    if (document.querySelector(".upload-field .upload-card") || (document.querySelector(".upload-field") && kept())) {
      load();
    }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
