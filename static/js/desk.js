// The review desk's keys: j next item, k previous, a approve, o open the larger view, c correction.
// Decisions still go through the item's own forms (POST with CSRF); keys only move focus and press
// the item's buttons. Nothing happens while the user types in a field or holds a modifier key.
(function () {
  "use strict";
  function typing(el) {
    if (!el) { return false; }
    var tag = el.tagName;
    if (tag === "INPUT") { return !/^(checkbox|radio|button|submit|reset)$/.test(el.type); }
    return tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }
  function items() {
    return Array.prototype.slice.call(document.querySelectorAll("#review-queue [data-desk-item]"));
  }
  function current() {
    var active = document.activeElement;
    var article = active && active.closest ? active.closest("#review-queue .review-items > li") : null;
    return article ? article.querySelector("[data-desk-item]") : null;
  }
  function move(step) {
    var list = items();
    if (!list.length) { return; }
    var here = list.indexOf(current());
    var next = here < 0 ? (step > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, here + step));
    list[next].focus();
    list[next].scrollIntoView({block: "nearest"});
  }
  function within(selector) {
    var title = current();
    var item = title ? title.closest("li") : null;
    return item ? item.querySelector(selector) : null;
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) { return; }
    if (typing(event.target) || !document.getElementById("review-queue")) { return; }
    var key = event.key;
    var target = null;
    if (key === "j" || key === "k") {
      event.preventDefault();
      move(key === "j" ? 1 : -1);
      return;
    }
    if (key === "a") {
      target = within("[data-desk-approve]");
      if (target) { event.preventDefault(); target.click(); }
    } else if (key === "o") {
      target = within("[data-desk-open]");
      if (target) { event.preventDefault(); target.open = !target.open; }
    } else if (key === "c") {
      target = within("textarea");
      if (target) { event.preventDefault(); target.focus(); }
    }
  });
})();
