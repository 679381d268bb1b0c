// Suggestions from the uploaded receipt (portal/ocr/prefill.py, templates/ocr/_suggestions.html).
// When the first receipt file of the new-receipt form is uploaded (its card carries the upload's id), ask the
// server what it read there; the answer polls itself (htmx) until the file is read. A "Use" button fills its
// own field only, when the partner presses it: nothing is filled by itself, nothing typed is changed
// without that click. CSP-safe: a same-origin script, the messages are data attributes.
(function () {
  "use strict";

  function box() { return document.getElementById("ocr-suggestions"); }

  function firstUpload() {
    var input = document.querySelector('.upload-field[data-purpose="receipt"] .upload-card[data-status="ready"] input[name="uploads"]');
    return input ? input.value : "";
  }

  function update() {
    var el = box();
    if (!el || !window.htmx) { return; }
    var token = firstUpload();
    if ((el.getAttribute("data-token") || "") === token) { return; }
    el.setAttribute("data-token", token);
    if (!token) { el.textContent = ""; return; }
    var url = el.getAttribute("data-url").replace("__ID__", encodeURIComponent(token));
    window.htmx.ajax("GET", url, { target: el, swap: "innerHTML" });
  }

  function fill(button) {
    var name = button.getAttribute("data-prefill-field");
    var value = button.getAttribute("data-prefill-value") || "";
    var form = button.closest("form");
    var field = form && form.elements.namedItem(name);
    if (!field || !field.tagName) { return; }
    if (field.tagName === "SELECT") {
      var known = Array.prototype.some.call(field.options, function (o) { return o.value === value; });
      if (!known) { return; }
    } else if (field.getAttribute("data-number") === "decimal") {
      value = value.replace(".", field.getAttribute("data-decimal") || ".");
    }
    field.value = value;
    // As if typed: the checks before sending and the device draft see the change.
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.dispatchEvent(new Event("change", { bubbles: true }));
    var used = box() && box().getAttribute("data-msg-used");
    var state = button.querySelector("[data-prefill-state]");
    if (used && state) { state.textContent = used; }
  }

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element && event.target.closest("[data-prefill-field]");
    if (button) { event.preventDefault(); fill(button); }
  });

  var pending = false;
  function soon() {
    if (pending) { return; }
    pending = true;
    window.setTimeout(function () { pending = false; update(); }, 50);
  }

  function start() {
    update();
    new MutationObserver(soon).observe(document.body, { childList: true, subtree: true, attributes: true,
                                                        attributeFilter: ["data-status"] });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else { start(); }
})();
