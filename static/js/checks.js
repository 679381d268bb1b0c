// Checks before sending: required fields and numbers are checked in the browser before anything is sent,
// shown in the same error summary and field errors as the server's (templates/_macros/forms.html), with
// the translated sentences the server put in data attributes. The server stays the authority: it runs
// every check again. CSP-safe: no inline code, no styles.
//
// Forms opt in with data-checks. A field with data-msg-required must not be empty (a file input also
// counts the completed uploads named by data-or-field); a field with data-number must hold a number as
// portal/numbers.py reads it: keep parseNumber below in step with parse_number there.
(function () {
  "use strict";

  var MAX_CHARS = 40;
  var MAX_DIGITS = 24;
  var SPACES = " \u00a0\u202f\u2009\u2007";
  var AR_DECIMAL = "\u066b";
  var AR_GROUP = "\u066c";

  function Problem(kind) { this.kind = kind; }

  function westernDigits(text) {
    return text.replace(/[\u0660-\u0669\u06f0-\u06f9]/g, function (ch) {
      var code = ch.charCodeAt(0);
      return String(code >= 0x06f0 ? code - 0x06f0 : code - 0x0660);
    });
  }

  function isDigits(s) { return /^[0-9]+$/.test(s); }

  function stripSpaces(s) {
    var start = 0, end = s.length;
    while (start < end && (SPACES + "\t\r\n").indexOf(s[start]) >= 0) { start++; }
    while (end > start && (SPACES + "\t\r\n").indexOf(s[end - 1]) >= 0) { end--; }
    return s.slice(start, end);
  }

  function count(s, ch) { return s.split(ch).length - 1; }

  function groupsOk(integer, groupChars) {
    var hasGroup = false;
    for (var i = 0; i < groupChars.length; i++) { if (integer.indexOf(groupChars[i]) >= 0) { hasGroup = true; } }
    if (!hasGroup) { return integer === "" || isDigits(integer); }
    var parts = integer.split(new RegExp("[" + groupChars.replace(/[.\\\]\-^]/g, "\\$&") + "]"));
    if (!(parts[0].length >= 1 && parts[0].length <= 3 && isDigits(parts[0]))) { return false; }
    for (var j = 1; j < parts.length; j++) {
      if (parts[j].length !== 3 || !isDigits(parts[j])) { return false; }
    }
    return true;
  }

  // The number `text` stands for as a plain string ("-1250.50"), null when empty; throws Problem
  // ("wrong" or "ambiguous"). decimalHint/groupHint: the user's language's symbols; lone: "group",
  // "decimal" or "" (see portal/numbers.py for the rules).
  function parseNumber(text, decimalHint, groupHint, lone) {
    if (text === null || text === undefined) { return null; }
    if (text.length > MAX_CHARS) { throw new Problem("wrong"); }
    var s = stripSpaces(westernDigits(text));
    if (!s) { return null; }
    var sign = "";
    if ("-\u2212+".indexOf(s[0]) >= 0) {
      sign = s[0] === "+" ? "" : "-";
      s = stripSpaces(s.slice(1));
    }
    s = s.split("").map(function (ch) { return SPACES.indexOf(ch) >= 0 ? " " : ch; }).join("");
    if (!s || !/^[0-9., \u066b\u066c]+$/.test(s) || !/[0-9]/.test(s)) { throw new Problem("wrong"); }
    var dots = count(s, "."), commas = count(s, ",");
    var otherMarks = /[ \u066b\u066c]/.test(s);
    var decimal = null;
    if (count(s, AR_DECIMAL) > 1) { throw new Problem("wrong"); }
    if (s.indexOf(AR_DECIMAL) >= 0) {
      decimal = AR_DECIMAL;
    } else if (dots && commas) {
      decimal = s.lastIndexOf(".") > s.lastIndexOf(",") ? "." : ",";
    } else if (dots > 1 || commas > 1) {
      decimal = null;
    } else if (dots || commas) {
      var mark = dots ? "." : ",";
      var halves = s.split(mark), before = halves[0], after = halves[1];
      var three = after.length === 3 && isDigits(after) && isDigits(before) && before.length >= 1 && before.length <= 3;
      if (otherMarks || !three || /^0+$/.test(before)) {
        decimal = mark;
      } else if (lone === "group" || (!lone && groupHint === mark)) {
        decimal = null;
      } else if (lone === "decimal" || decimalHint === mark) {
        decimal = mark;
      } else {
        throw new Problem("ambiguous");
      }
    }
    var integer = s, fraction = "";
    if (decimal !== null) {
      if (count(s, decimal) !== 1) { throw new Problem("wrong"); }
      var pieces = s.split(decimal);
      integer = pieces[0];
      fraction = pieces[1];
    }
    var groupChars = " " + AR_GROUP + (decimal === "." ? "," : decimal === "," ? "." : ".,");
    if (fraction !== "" && !isDigits(fraction)) { throw new Problem("wrong"); }
    if (!groupsOk(integer, groupChars) || (integer === "" && fraction === "")) { throw new Problem("wrong"); }
    var digits = integer.replace(/[^0-9]/g, "");
    if (digits.length + fraction.length > MAX_DIGITS) { throw new Problem("wrong"); }
    return sign + (digits || "0") + (fraction ? "." + fraction : "");
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (all, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? values[name] : all;
    });
  }

  function numberProblem(input) {
    var d = input.dataset;
    var value;
    try {
      value = parseNumber(input.value, d.decimal || ".", d.group || ",", d.lone || "");
    } catch (problem) {
      if (problem instanceof Problem && problem.kind === "ambiguous" && d.msgAmbiguous) {
        var raw = stripSpaces(westernDigits(input.value));
        var mark = raw.indexOf(".") >= 0 ? "." : ",";
        var halves = raw.split(mark);
        return fill(d.msgAmbiguous, {
          value: stripSpaces(input.value), whole: halves[0] + halves[1],
          decimal: halves[0] + (d.decimal || ".") + (halves[1].replace(/0+$/, "") || "0")
        });
      }
      if (problem instanceof Problem) { return d.msgNumber; }
      throw problem;
    }
    if (value !== null && d.number === "whole" && /\.[0-9]*[1-9]/.test(value)) { return d.msgNumber; }
    return null;
  }

  function uploadsCount(form, name) {
    if (!name) { return 0; }
    return Array.prototype.filter.call(form.querySelectorAll("[name='" + name + "']"), function (el) {
      return el.value && el.value.trim();
    }).length;
  }

  // A file field's own uploads: finished (their hidden input) or still on the way (the form waits for
  // those: static/js/src/uploads.js), counted in its .upload-field only, so a handover proof is not
  // taken for the receipt file.
  function uploadsOf(form, el) {
    var box = el.closest(".upload-field");
    if (!box || !el.dataset.orField) { return uploadsCount(form, el.dataset.orField); }
    return box.querySelectorAll(".upload-card-pending, .upload-card input[name='" + el.dataset.orField + "']").length;
  }

  function isMissing(form, el) {
    if (el.type === "checkbox") { return !el.checked; }
    if (el.type === "radio") { return !form.querySelector("input[type=radio][name='" + el.name + "']:checked"); }
    if (el.type === "file") { return !(el.files && el.files.length) && !uploadsOf(form, el); }
    if (el.tagName === "SELECT") { return el.value === "" || (el.dataset.empty !== undefined && el.value === el.dataset.empty); }
    return !el.value || !el.value.trim();
  }

  // [[element, message], …] in the order of the form.
  function problems(form) {
    var found = [];
    var seenRadio = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.disabled || el.type === "hidden") { return; }
      if (el.type === "radio") {
        if (seenRadio[el.name]) { return; }
        seenRadio[el.name] = true;
      }
      if (el.dataset.msgRequired && isMissing(form, el)) {
        found.push([el, el.dataset.msgRequired]);
        return;
      }
      if (el.dataset.number && el.value) {
        var message = numberProblem(el);
        if (message) { found.push([el, message]); }
      }
    });
    return found;
  }

  function clearMarks(form) {
    Array.prototype.forEach.call(form.querySelectorAll(".error-summary[aria-labelledby='error-summary-title'], " +
      ".error-summary[data-client-checks]"), function (el) { el.remove(); });
    Array.prototype.forEach.call(form.querySelectorAll(".field.has-error"), function (box) {
      box.classList.remove("has-error");
      Array.prototype.forEach.call(box.querySelectorAll("p.error"), function (p) { p.remove(); });
      Array.prototype.forEach.call(box.querySelectorAll("[aria-invalid]"), function (el) {
        el.removeAttribute("aria-invalid");
        var ids = (el.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (id) {
          return id && !/-error$/.test(id);
        });
        if (ids.length) { el.setAttribute("aria-describedby", ids.join(" ")); } else { el.removeAttribute("aria-describedby"); }
      });
    });
  }

  // The same markup as the error_summary and field macros.
  function show(form, found) {
    clearMarks(form);
    var summary = document.createElement("div");
    summary.className = "error-summary";
    summary.setAttribute("role", "alert");
    summary.setAttribute("tabindex", "-1");
    summary.setAttribute("aria-labelledby", "error-summary-title");
    summary.setAttribute("data-client-checks", "");
    var h2 = document.createElement("h2");
    h2.id = "error-summary-title";
    h2.textContent = form.dataset.msgSummary || "";
    var ul = document.createElement("ul");
    found.forEach(function (pair) {
      var el = pair[0], message = pair[1];
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = "#" + el.id;
      a.textContent = message;
      li.appendChild(a);
      ul.appendChild(li);
      var box = el.closest(".field");
      if (!box) { return; }
      box.classList.add("has-error");
      var p = box.querySelector("#" + CSS.escape(el.id + "-error"));
      if (!p) {
        p = document.createElement("p");
        p.className = "error";
        p.id = el.id + "-error";
        if (el.type === "checkbox" || el.type === "radio") { box.appendChild(p); } else { el.before(p); }
      }
      var span = document.createElement("span");
      span.textContent = message;
      p.appendChild(span);
      p.appendChild(document.createTextNode(" "));
      if (el.type !== "checkbox") { el.setAttribute("aria-invalid", "true"); }
      var ids = (el.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
      if (ids.indexOf(p.id) < 0) { ids.push(p.id); }
      el.setAttribute("aria-describedby", ids.join(" "));
    });
    summary.appendChild(h2);
    summary.appendChild(ul);
    form.insertBefore(summary, form.firstChild);
    summary.focus();
  }

  // True when the form may be sent; otherwise the problems are shown and focus is on the summary.
  function check(form) {
    var found = problems(form);
    if (!found.length) { return true; }
    show(form, found);
    return false;
  }

  // Runs before upload.js and any other submit handler (capture phase on the document).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-checks")) { return; }
    if (!check(form)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // A submit button that sends its form with htmx (the visit form): checked before the request.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (!elt || !elt.form || !elt.matches("button[type=submit], input[type=submit]")) { return; }
    if (!elt.form.hasAttribute("data-checks")) { return; }
    if (!check(elt.form)) { event.preventDefault(); }
  });

  // A link in the summary puts the cursor in its field (the label stays in view above it).
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest(".error-summary a[href^='#']") : null;
    if (!link) { return; }
    var target = document.getElementById(decodeURIComponent(link.getAttribute("href").slice(1)));
    if (!target) { return; }
    event.preventDefault();
    var label = document.querySelector("label[for='" + target.id + "']");
    (label || target).scrollIntoView({ block: "center" });
    target.focus();
  });

  window.portalChecks = { parseNumber: parseNumber, check: check };
})();
