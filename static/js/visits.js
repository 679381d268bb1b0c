// The visit form: the device's location only after the consent tick, and a clear word when an
// autosave could not reach the server (the entries stay in the form; the next change saves them).
(function () {
  "use strict";
  function byId(id) { return document.getElementById(id); }
  function setStatus(text) {
    var status = byId("draft-status");
    if (status && text) { status.textContent = text; }
  }
  function clearLocation() {
    ["latitude", "longitude"].forEach(function (id) { var el = byId(id); if (el) { el.value = ""; } });
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("#use-location") : null;
    if (!button) { return; }
    var consent = byId("location_consent");
    if (!consent || !consent.checked) {
      setStatus(button.dataset.msgConsent);
      if (consent) { consent.focus(); }
      return;
    }
    if (!navigator.geolocation) { setStatus(button.dataset.msgDenied); return; }
    navigator.geolocation.getCurrentPosition(function (pos) {
      byId("latitude").value = pos.coords.latitude.toFixed(5);
      byId("longitude").value = pos.coords.longitude.toFixed(5);
      // A change event lets the autosave keep the coordinates in the draft.
      byId("longitude").dispatchEvent(new Event("change", { bubbles: true }));
    }, function () { setStatus(button.dataset.msgDenied); }, { enableHighAccuracy: true, timeout: 15000 });
  });
  document.addEventListener("change", function (event) {
    if (event.target.id === "location_consent" && !event.target.checked) { clearLocation(); }
  });
  document.addEventListener("htmx:sendError", function (event) {
    var form = byId("visit-form");
    if (form && event.detail.elt === form) { setStatus(form.dataset.msgOffline); }
  });
  // Back online: save the draft at once rather than waiting for the next keystroke.
  window.addEventListener("online", function () {
    var form = byId("visit-form");
    if (form && window.htmx) { window.htmx.trigger(form, "change"); }
  });
})();
