// The status page's script (src/service/page.rs inlines it): run-now buttons and the refresh.
// Without it the page is static and each button posts a plain form to the API.
(() => {
  "use strict";
  const indicator = document.getElementById("refresh");
  const PERIOD = Number(indicator.dataset.periodMs) || 5000;
  const TOKEN = "lakeport.api-token";
  const KEEP_NOTE_MS = 60000;
  let pending = 0; // run-now calls in flight
  const notes = new Map(); // task -> {text, kind, at}: outcomes, kept across refreshes

  const paused = () => pending > 0 || document.querySelector("details[open]") !== null;

  function headers() {
    const token = sessionStorage.getItem(TOKEN);
    return token ? { Authorization: "Bearer " + token } : {};
  }

  function say(text, state) {
    indicator.textContent = text;
    indicator.toggleAttribute("data-paused", state === "paused");
    indicator.toggleAttribute("data-failed", state === "failed");
  }

  function showNotes() {
    const now = Date.now();
    for (const [task, note] of notes) {
      if (now - note.at > KEEP_NOTE_MS) { notes.delete(task); continue; }
      const row = document.querySelector(`tbody[data-task="${CSS.escape(task)}"]`);
      const out = row && row.querySelector('[data-field="outcome"]');
      if (out) { out.textContent = note.text; out.dataset.kind = note.kind; }
    }
  }

  // POST with the stored token; on a 401 ask for the token once, keep it for this tab and
  // try again. A token the service refuses is forgotten.
  async function post(url) {
    let r = await fetch(url, { method: "POST", headers: headers() });
    if (r.status === 401) {
      const refused = sessionStorage.getItem(TOKEN) !== null;
      sessionStorage.removeItem(TOKEN);
      const token = window.prompt(refused
        ? "The API token was refused. API token (LAKEPORT_API_TOKEN):"
        : "This call needs the API token (LAKEPORT_API_TOKEN):");
      if (token) {
        sessionStorage.setItem(TOKEN, token);
        r = await fetch(url, { method: "POST", headers: headers() });
        if (r.status === 401) sessionStorage.removeItem(TOKEN);
      }
    }
    return r;
  }

  async function errorText(r) {
    try { return (await r.json()).error || r.statusText; } catch (_) { return r.statusText; }
  }

  async function runNow(form) {
    const task = form.dataset.run;
    const button = form.querySelector("button");
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    pending += 1;
    notes.set(task, { text: "starting…", kind: "busy", at: Date.now() });
    showNotes();
    let started = false;
    try {
      const r = await post(form.action);
      if (r.status === 202) {
        started = true;
        notes.set(task, { text: "Run started", kind: "ok", at: Date.now() });
      } else if (r.status === 409) {
        notes.set(task, { text: "Already running: " + await errorText(r), kind: "busy", at: Date.now() });
      } else {
        notes.set(task, { text: `Error ${r.status}: ` + await errorText(r), kind: "error", at: Date.now() });
      }
    } catch (e) {
      notes.set(task, { text: "Error: " + e.message, kind: "error", at: Date.now() });
    } finally {
      pending -= 1;
      button.disabled = false;
      button.removeAttribute("aria-busy");
      showNotes();
    }
    if (started) window.setTimeout(refresh, 1000);
  }

  // Fetches the page and swaps its <main>, unless a DDL is open or a call is pending.
  async function refresh() {
    if (paused()) {
      say(pending > 0 ? "Paused while a call is pending" : "Paused while a DDL is open", "paused");
      return;
    }
    try {
      const r = await fetch(location.pathname, { headers: headers(), cache: "no-store" });
      if (!r.ok) throw new Error(`${r.status} ${await errorText(r)}`);
      // Only the main element is parsed: the answer's own style and script elements carry
      // its nonce, not this page's, and parsing them here would be a CSP violation. Values in
      // main are escaped, so its tags are the page's own.
      const text = await r.text();
      const start = text.indexOf("<main"), end = text.lastIndexOf("</main>");
      if (start < 0 || end < start) throw new Error("the answer has no <main>");
      const parsed = new DOMParser().parseFromString(text.slice(start, end + 7), "text/html");
      const main = parsed.querySelector("main");
      if (!main) throw new Error("the answer has no <main>");
      if (paused()) return; // a DDL was opened or a button clicked meanwhile
      document.querySelector("main").replaceWith(document.adoptNode(main));
      showNotes();
      say("Live: updated " + new Date().toLocaleTimeString(), "live");
    } catch (e) {
      say("Refresh failed (" + e.message + "); trying again", "failed");
    }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-run]");
    if (!form) return;
    event.preventDefault();
    if (!form.querySelector("button").disabled) runNow(form);
  });
  document.addEventListener("toggle", () => {
    if (paused()) say("Paused while a DDL is open", "paused");
    else say(`Live: refreshes every ${PERIOD / 1000} s`, "live");
  }, true);
  window.setInterval(refresh, PERIOD);
})();
