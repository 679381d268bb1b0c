// Photos made smaller before they leave the phone, for both upload paths: the resumable one
// (static/js/src/uploads.js, through the bundle) and the form's own (static/js/upload.js). One set of rules:
// a JPEG/PNG photo larger than the long edge or the byte limit becomes a JPEG of that edge (smaller still
// on a slow link); transparent areas are white; never upscaled. CSP-safe: no inline code, no styles.
(function () {
  "use strict";
  var MAX_EDGE = 2000;          // long edge of a shrunk photo, in pixels
  var QUALITY = 0.85;           // JPEG quality of a shrunk photo
  var SLOW_EDGE = 1600;         // on a slow link: still legible for a printed receipt (about 140 dpi on A4)…
  var SLOW_QUALITY = 0.7;       // …and about a third of the bytes (a 4 MB phone photo: ~120 KB, not ~320 KB)
  var SHRINK_ABOVE = 1500000;   // bytes: smaller photos that also fit MAX_EDGE are sent as they are

  // A slow link: the browser estimates the download under 0.5 Mbit/s (2G, EDGE, a crowded 3G cell), or
  // the user asked to save data. Browsers without the estimate keep the normal size.
  function slowLink() {
    var c = navigator.connection;
    return !!c && (c.saveData === true || /2g$/.test(c.effectiveType || "") ||
      (typeof c.downlink === "number" && c.downlink > 0 && c.downlink < 0.5));
  }

  function baseName(name) {
    return (name || "photo").replace(/\.[^.]*$/, "") || "photo";
  }

  function canShrink() {
    return typeof window.createImageBitmap === "function" && window.HTMLCanvasElement &&
      typeof HTMLCanvasElement.prototype.toBlob === "function";
  }

  // A promise of a smaller JPEG File of a large JPEG/PNG photo, or of null when that is not possible
  // (another type, a browser that cannot decode it) or not smaller: then the original is sent as it is.
  function shrink(blob, name) {
    if (!/^image\/(jpeg|png)$/.test(blob.type) || !canShrink()) { return Promise.resolve(null); }
    var slow = slowLink();
    var edge = slow ? SLOW_EDGE : MAX_EDGE;
    return window.createImageBitmap(blob, { imageOrientation: "from-image" }).then(function (bitmap) {
      var scale = Math.min(1, edge / Math.max(bitmap.width, bitmap.height));
      if (scale === 1 && blob.size <= SHRINK_ABOVE) { bitmap.close(); return null; }
      var canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(bitmap.width * scale));
      canvas.height = Math.max(1, Math.round(bitmap.height * scale));
      var ctx = canvas.getContext("2d");
      ctx.fillStyle = "#fff";  // transparent PNG areas become white, not black, in the JPEG
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      bitmap.close();
      return new Promise(function (resolve) {
        canvas.toBlob(function (small) {
          if (!small || small.size >= blob.size) { resolve(null); return; }
          resolve(new File([small], baseName(name) + ".jpg", { type: "image/jpeg", lastModified: Date.now() }));
        }, "image/jpeg", slow ? SLOW_QUALITY : QUALITY);
      });
    }, function () { return null; });
  }

  window.integplanShrink = { shrink: shrink, slowLink: slowLink };
})();
