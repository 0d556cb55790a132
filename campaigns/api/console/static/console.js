// The console's only script: live tiles (Server-Sent Events), confirmation dialogs and copy
// buttons. Every page works without it; this makes them live and quicker to use.
"use strict";

(function () {
  function format(kind, value, currency) {
    if (value === null || value === undefined) return "—";
    if (kind === "percent") return (value * 100).toFixed(1) + "%";
    if (kind === "money") {
      try {
        return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "USD" }).format(value);
      } catch (e) {
        return value.toFixed(2) + " " + currency;
      }
    }
    if (kind === "number") return Number(value).toLocaleString();
    return String(value);
  }

  function liveTiles() {
    var region = document.querySelector("[data-stream]");
    if (!region || !window.EventSource) return;
    var source = new EventSource(region.getAttribute("data-stream"));
    source.addEventListener("metrics", function (event) {
      var data = JSON.parse(event.data);
      region.querySelectorAll("[data-metric]").forEach(function (el) {
        var text = format(el.getAttribute("data-format"), data[el.getAttribute("data-metric")], el.getAttribute("data-currency"));
        if (el.textContent !== text) {
          el.textContent = text;
          el.classList.remove("changed");
          void el.offsetWidth; // restart the highlight
          el.classList.add("changed");
        }
      });
      var stamp = region.querySelector("[data-updated]");
      if (stamp && data.lastUpdated) {
        var at = new Date(data.lastUpdated);
        stamp.textContent = "updated " + at.toLocaleTimeString(undefined, { timeZone: data.timezone });
        stamp.title = at.toISOString();
      }
    });
  }

  function dialogs() {
    document.querySelectorAll("[data-dialog]").forEach(function (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-dialog"));
      if (!dialog || !dialog.showModal) return;
      opener.addEventListener("click", function (event) {
        event.preventDefault();
        dialog.showModal();
        var first = dialog.querySelector("input:not([type=hidden]), button");
        if (first) first.focus();
      });
    });
    document.querySelectorAll("dialog [data-close]").forEach(function (closer) {
      closer.addEventListener("click", function (event) {
        event.preventDefault();
        closer.closest("dialog").close();
      });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var field = document.getElementById(button.getAttribute("data-copy"));
        var done = function () {
          var label = button.textContent;
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = label; }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(field.value).then(done);
        } else {
          field.select();
          document.execCommand("copy");
          done();
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    liveTiles();
    dialogs();
    copyButtons();
  });
})();
