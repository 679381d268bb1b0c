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
})();
