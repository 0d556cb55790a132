/*!
 * Quantum Voice AI widget loader. No dependencies.
 *
 * Reads the configuration its embed code carries (a JSON block, never executed), renders
 * the launcher in a shadow root (the host page's CSS cannot reach it, nor it the page's),
 * refreshes the configuration from the platform, and reports widget.impression,
 * widget.click and widget.display events with the campaign's publishable key.
 *
 * Callbacks are names of functions on the page (data-on-call-start="myApp.onCallStart");
 * they are looked up on window and called with one object. Nothing from the embed code or
 * the configuration is evaluated as code or written as HTML.
 */
(function () {
  "use strict";

  var CALLBACKS = {
    onOpen: "data-on-open",
    onClose: "data-on-close",
    onCallStart: "data-on-call-start",
    onCallEnd: "data-on-call-end",
    onLeadCreated: "data-on-lead-created"
  };
  var NAME = /^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*){0,4}$/;
  var FORBIDDEN = ["__proto__", "prototype", "constructor"];
  var HEX = /^#[0-9a-fA-F]{6}$/;
  var SIZES = { small: 44, medium: 56, large: 68 };
  var REFRESH_MS = 60000;

  var api = window.QuantumVoice = window.QuantumVoice || { widgets: [] };

  function randomId() {
    var c = window.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var bytes = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(bytes);
    else for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  // One visitor id per browser (or per page where storage is off), to tie clicks to later conversions.
  function visitorId() {
    try {
      var v = window.localStorage.getItem("quantumVoiceVisitor");
      if (!v) { v = randomId(); window.localStorage.setItem("quantumVoiceVisitor", v); }
      return v;
    } catch (e) {
      api._visitor = api._visitor || randomId();
      return api._visitor;
    }
  }

  function resolveCallback(name) {
    if (typeof name !== "string" || !NAME.test(name)) return null;
    var target = window;
    var parts = name.split(".");
    for (var i = 0; i < parts.length; i++) {
      if (FORBIDDEN.indexOf(parts[i]) >= 0 || target == null) return null;
      if (!Object.prototype.hasOwnProperty.call(target, parts[i]) && !(parts[i] in Object(target))) return null;
      target = target[parts[i]];
    }
    return typeof target === "function" ? target : null;
  }

  function pageRegex(pattern) {
    var out = "";
    for (var i = 0; i < pattern.length; i++) {
      if (pattern.substr(i, 2) === "**") { out += ".*"; i++; }
      else if (pattern[i] === "*") out += "[^/]*";
      else out += pattern[i].replace(/[.*+?^${}()|[\]\\\/-]/g, "\\$&");
    }
    return new RegExp("^" + out + "$");
  }

  function showsOnPage(path, behavior) {
    var hide = behavior.hideOnPages || [], show = behavior.showOnPages || [];
    for (var i = 0; i < hide.length; i++) if (pageRegex(hide[i]).test(path)) return false;
    if (!show.length) return true;
    for (var j = 0; j < show.length; j++) if (pageRegex(show[j]).test(path)) return true;
    return false;
  }

  function safeUrl(value) {
    try {
      var u = new URL(value, window.location.href);
      return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
    } catch (e) { return null; }
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;
    return node;
  }

  var CSS = [
    ":host{all:initial}",
    ".qv{position:fixed;z-index:2147483000;font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}",
    ".qv.bottom-right{right:20px;bottom:20px}.qv.bottom-left{left:20px;bottom:20px}",
    ".qv.top-right{right:20px;top:20px}.qv.top-left{left:20px;top:20px}",
    ".launcher{display:flex;align-items:center;gap:8px;border:0;border-radius:999px;cursor:pointer;",
    "padding:0 18px 0 8px;height:var(--qv-size);background:var(--qv-primary);color:var(--qv-text);",
    "font:inherit;font-weight:600;box-shadow:0 4px 16px rgba(0,0,0,.2)}",
    ".launcher:focus-visible{outline:3px solid var(--qv-primary);outline-offset:3px}",
    ".avatar{width:calc(var(--qv-size) - 16px);height:calc(var(--qv-size) - 16px);border-radius:50%;object-fit:cover}",
    ".dot{width:calc(var(--qv-size) - 24px);height:calc(var(--qv-size) - 24px);border-radius:50%;",
    "background:rgba(255,255,255,.25);margin-left:4px}",
    ".panel{position:absolute;width:320px;max-width:calc(100vw - 40px);border-radius:12px;padding:16px;",
    "background:var(--qv-background);color:var(--qv-panel-text);box-shadow:0 8px 32px rgba(0,0,0,.25)}",
    ".bottom-right .panel,.bottom-left .panel{bottom:calc(var(--qv-size) + 12px)}",
    ".top-right .panel,.top-left .panel{top:calc(var(--qv-size) + 12px)}",
    ".bottom-right .panel,.top-right .panel{right:0}.bottom-left .panel,.top-left .panel{left:0}",
    ".panel[hidden]{display:none}.title{font-weight:700;font-size:16px;margin:0 24px 8px 0}",
    ".greeting{margin:0 0 12px}.close{position:absolute;top:8px;right:8px;border:0;background:none;",
    "color:inherit;font-size:20px;cursor:pointer;line-height:1}",
    ".call{border:0;border-radius:8px;padding:10px 14px;width:100%;cursor:pointer;font:inherit;",
    "font-weight:600;background:var(--qv-primary);color:var(--qv-text)}",
    ".preview{margin-top:8px;font-size:12px;opacity:.7}"
  ].join("");

  function Widget(script) {
    this.script = script;
    this.campaignId = script.getAttribute("data-quantum-voice") || "";
    this.key = script.getAttribute("data-key") || "";
    this.apiUrl = (script.getAttribute("data-api-url") || new URL(script.src, window.location.href).origin).replace(/\/+$/, "");
    this.preview = script.getAttribute("data-preview") === "true";
    this.callbacks = {};
    for (var name in CALLBACKS) {
      var value = script.getAttribute(CALLBACKS[name]);
      if (value) this.callbacks[name] = value;
    }
    this.queue = [];
    this.openedAt = null;
    this.inCall = false;
    this.impressed = false;
    this.host = null;
  }

  Widget.prototype.inlineConfig = function () {
    var blocks = document.querySelectorAll('script[type="application/json"][data-quantum-voice-config]');
    for (var i = 0; i < blocks.length; i++) {
      if (blocks[i].getAttribute("data-quantum-voice-config") !== this.campaignId) continue;
      try {
        var parsed = JSON.parse(blocks[i].textContent || "{}");
        return parsed && parsed.widgetSettings ? parsed.widgetSettings : null;
      } catch (e) { return null; }
    }
    return null;
  };

  Widget.prototype.start = function () {
    var self = this;
    var inline = this.inlineConfig();
    if (inline && !inline.behavior) inline = null;
    this.refresh(inline);
    window.addEventListener("pagehide", function () { self.closePanel(true); self.flush(true); });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") self.flush(true);
    });
  };

  // Fetch the live configuration (status, calling window, latest styling) and re-render.
  Widget.prototype.refresh = function (fallback) {
    var self = this;
    var url = this.apiUrl + "/embed/config?key=" + encodeURIComponent(this.key) + (this.preview ? "&preview=true" : "");
    fetch(url, { mode: "cors", credentials: "omit" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("config " + r.status)); })
      .then(function (live) { self.apply(live); })
      .catch(function (err) {
        if (fallback && !self.config) self.apply({ visible: self.preview, styling: fallback.styling, behavior: fallback.behavior });
        if (window.console && console.warn) console.warn("Quantum Voice widget:", err.message || err);
      });
  };

  Widget.prototype.apply = function (config) {
    var self = this;
    this.config = config;
    var behavior = config.behavior || {};
    var visible = !!config.visible && showsOnPage(window.location.pathname, behavior);
    if (this.host) { this.host.remove(); this.host = null; }
    if (visible) this.render(config.styling || {}, behavior, config.preview === true ? config.hiddenReason : null);
    clearTimeout(this.refreshTimer);
    if (behavior.showOnlyDuringWindow) this.refreshTimer = setTimeout(function () { self.refresh(null); }, REFRESH_MS);
  };

  Widget.prototype.render = function (styling, behavior, previewNote) {
    var self = this;
    var host = el("div", { "data-quantum-voice-widget": this.campaignId });
    var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
    var style = el("style", {}, CSS);
    var dark = styling.theme === "dark" ||
      (styling.theme === "auto" && window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
    var size = SIZES[styling.size] || SIZES.medium;
    host.style.setProperty("--qv-primary", HEX.test(styling.primaryColor) ? styling.primaryColor : "#4f46e5");
    host.style.setProperty("--qv-text", HEX.test(styling.textColor) ? styling.textColor : "#ffffff");
    host.style.setProperty("--qv-background", dark ? "#1f2937" : (HEX.test(styling.backgroundColor) ? styling.backgroundColor : "#ffffff"));
    host.style.setProperty("--qv-panel-text", dark ? "#f9fafb" : "#111827");
    host.style.setProperty("--qv-size", size + "px");

    var position = ["bottom-right", "bottom-left", "top-right", "top-left"].indexOf(styling.position) >= 0 ? styling.position : "bottom-right";
    var box = el("div", { "class": "qv " + position, part: "widget" });
    var launcher = el("button", { "class": "launcher", type: "button", "aria-haspopup": "dialog", "aria-expanded": "false", part: "launcher" });
    var avatar = styling.avatarUrl ? safeUrl(styling.avatarUrl) : null;
    if (avatar) {
      var img = el("img", { "class": "avatar", alt: "" });
      img.src = avatar;
      launcher.appendChild(img);
    } else {
      launcher.appendChild(el("span", { "class": "dot", "aria-hidden": "true" }));
    }
    launcher.appendChild(el("span", { "class": "label" }, styling.launcherText || "Talk to us"));

    var panel = el("div", { "class": "panel", role: "dialog", "aria-label": styling.title || "Voice assistant", hidden: "", part: "panel" });
    var close = el("button", { "class": "close", type: "button", "aria-label": "Close" }, "\u00d7");
    panel.appendChild(close);
    panel.appendChild(el("p", { "class": "title" }, styling.title || "Questions? Talk to our assistant"));
    if (behavior.greeting) panel.appendChild(el("p", { "class": "greeting" }, behavior.greeting));
    var call = el("button", { "class": "call", type: "button" }, "Start call");
    panel.appendChild(call);
    if (previewNote) panel.appendChild(el("p", { "class": "preview" }, "Preview: hidden on your site now (" + previewNote + ")"));

    launcher.addEventListener("click", function () {
      self.track("widget.click", {});
      if (panel.hasAttribute("hidden")) self.openPanel(); else self.closePanel(false);
    });
    close.addEventListener("click", function () { self.closePanel(false); });
    call.addEventListener("click", function () {
      self.inCall = !self.inCall;
      call.textContent = self.inCall ? "End call" : "Start call";
      self.callback(self.inCall ? "onCallStart" : "onCallEnd", {});
    });

    box.appendChild(launcher);
    box.appendChild(panel);
    root.appendChild(style);
    root.appendChild(box);
    (document.body || document.documentElement).appendChild(host);
    this.host = host;
    this.launcher = launcher;
    this.panel = panel;

    if (!this.impressed) {
      this.impressed = true;
      this.track("widget.impression", {});
    }
    if (behavior.autoOpenDelay != null && !this.autoOpened) {
      this.autoOpened = true;
      setTimeout(function () { if (self.panel && self.panel.hasAttribute("hidden")) self.openPanel(); }, behavior.autoOpenDelay * 1000);
    }
  };

  Widget.prototype.openPanel = function () {
    if (!this.panel) return;
    this.panel.removeAttribute("hidden");
    this.launcher.setAttribute("aria-expanded", "true");
    this.openedAt = Date.now();
    this.callback("onOpen", {});
  };

  // How long the panel was shown is one widget.display event, sent when it closes.
  Widget.prototype.closePanel = function (unloading) {
    if (!this.panel || this.openedAt == null) return;
    var ms = Math.max(0, Date.now() - this.openedAt);
    this.openedAt = null;
    if (!unloading) {
      this.panel.setAttribute("hidden", "");
      this.launcher.setAttribute("aria-expanded", "false");
    }
    this.track("widget.display", { ms: ms });
    this.callback("onClose", { displayMs: ms });
    if (!unloading) this.flush(false);
  };

  Widget.prototype.callback = function (name, detail) {
    detail.campaignId = this.campaignId;
    var fn = resolveCallback(this.callbacks[name]);
    if (fn) {
      try { fn(detail); } catch (e) { if (window.console) console.error("Quantum Voice widget callback " + name + ":", e); }
    }
    try {
      this.script.dispatchEvent(new CustomEvent("quantumvoice:" + name.slice(2).toLowerCase(), { detail: detail, bubbles: true }));
    } catch (e) { /* CustomEvent missing: callbacks still ran */ }
  };

  Widget.prototype.track = function (type, data) {
    this.queue.push({ id: randomId(), type: type, occurredAt: new Date().toISOString(), subjectId: visitorId(), data: data });
    var self = this;
    clearTimeout(this.flushTimer);
    this.flushTimer = setTimeout(function () { self.flush(false); }, 250);
  };

  // text/plain keeps the request "simple" (no preflight); the platform checks the Origin itself.
  Widget.prototype.flush = function (unloading) {
    if (!this.queue.length) return;
    var events = this.queue.splice(0, 50);
    var body = JSON.stringify({ key: this.key, events: events });
    var url = this.apiUrl + "/embed/events";
    var sent = false;
    if (unloading && navigator.sendBeacon) {
      try { sent = navigator.sendBeacon(url, new Blob([body], { type: "text/plain" })); } catch (e) { sent = false; }
    }
    if (!sent) {
      var self = this;
      fetch(url, { method: "POST", mode: "cors", credentials: "omit", keepalive: true, headers: { "Content-Type": "text/plain" }, body: body })
        .then(function (r) {
          // Ids make a resend harmless; only a server-side failure is worth one.
          if (r.status >= 500 && !unloading) self.retry(events);
        })
        .catch(function () { if (!unloading) self.retry(events); });
    }
    if (this.queue.length) this.flush(unloading);
  };

  Widget.prototype.retry = function (events) {
    var self = this;
    if ((this.retries = (this.retries || 0) + 1) > 3) return;
    setTimeout(function () { self.queue = events.concat(self.queue); self.flush(false); }, 1000 * this.retries);
  };

  api.open = function (campaignId) {
    api.widgets.forEach(function (w) { if (!campaignId || w.campaignId === campaignId) w.openPanel(); });
  };
  api.close = function (campaignId) {
    api.widgets.forEach(function (w) { if (!campaignId || w.campaignId === campaignId) w.closePanel(false); });
  };

  function boot() {
    var scripts = document.querySelectorAll("script[data-quantum-voice]");
    for (var i = 0; i < scripts.length; i++) {
      var s = scripts[i];
      if (s.getAttribute("data-quantum-voice-started") === "true") continue;
      s.setAttribute("data-quantum-voice-started", "true");
      var widget = new Widget(s);
      api.widgets.push(widget);
      widget.start();
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
