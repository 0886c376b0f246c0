// pinpanel live page: keeps the pin table in step with the board, over Server-Sent Events.
//
// The page works without this file (each Toggle is a plain form post). With it, the table
// follows the event stream: a snapshot on connect, then one change per committed change,
// applied in sequence order so a late or repeated message never shows an older state.
// Toggle and Pulse go through fetch() instead of a page reload. Each row's "since ... by ..."
// line and 24-hour bar follow the changes too (rowhistory.js), and while the stream is
// down the rows are marked as possibly out of date.

import { RowHistory } from "./rowhistory.js";

const table = document.querySelector("table.pins[data-events]");
if (table) {
  start(table);
}

function start(table) {
  const status = document.getElementById("live-status");
  const alert = document.getElementById("live-alert");
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content;
  const api = table.dataset.api;
  let lastSeq = 0; // the newest change applied from the stream
  let source = null;
  let retryTimer = null;
  let retryDelay = 1000;
  let telling = false;
  // The server's clock minus ours, so the bars end at the server's "now".
  let skew = (Date.parse(table.dataset.now) - Date.now()) || 0;
  const serverNow = () => Date.now() + skew;
  const offsetMin = Number(table.dataset.utcOffset || 0);
  const notable = (table.dataset.notableCauses || "").split(" ").filter(Boolean);
  const histories = new Map();
  for (const row of table.querySelectorAll("tr[data-pin]")) {
    histories.set(Number(row.dataset.pin), new RowHistory(row, offsetMin, notable));
  }
  const stale = document.getElementById("live-stale");

  // While the stream is down a row may show a state that is no longer true: dim the
  // rows and say so (the note is the table's description while it applies).
  function setStale(on) {
    table.classList.toggle("stale", on);
    if (on) table.setAttribute("aria-describedby", "live-stale");
    else table.removeAttribute("aria-describedby");
    if (stale) stale.hidden = !on;
  }

  function redrawAll() {
    const now = serverNow();
    for (const history of histories.values()) history.redraw(now);
  }

  // Fill the gap a snapshot left (changes not seen one by one) from the audit log.
  async function catchUp(pins) {
    if (!pins.length || !table.dataset.history) return;
    const since = new Date(serverNow() - 24 * 3600 * 1000).toISOString();
    const query = new URLSearchParams([...pins.map((pin) => ["pin", String(pin)]),
      ["since", since], ["limit", "1000"]]);
    try {
      const response = await fetch(`${table.dataset.history}?${query}`, {
        headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      if (!response.ok) return; // the guessed lines stay: right state and time, no actor
      const body = await response.json();
      for (const pin of pins) {
        histories.get(pin)?.history(body.items.filter((item) => item.pin === pin));
      }
      redrawAll();
    } catch (error) {
      console.warn("pinpanel: could not read the history after a reconnect:", error);
    }
  }

  function setStatus(state, text) {
    setStale(state === "reconnecting");
    if (!status) return;
    status.hidden = false;
    status.dataset.state = state;
    status.textContent = text;
  }

  function showError(text) {
    if (!alert) return;
    alert.textContent = text;
    alert.hidden = !text;
  }

  function rowOf(pin) {
    return document.getElementById(`pin-${pin}`);
  }

  // Apply one PIN object to its row if it is not older than what the row shows.
  // `now` is the server's time when the PIN was true, for the pulse countdown. Other
  // parts of the page (the header diagram, app.js) hear it as a "pinpanel:change" event.
  function apply(pin, now, flash, tell = true) {
    if (tell) {
      telling = true; // dispatchEvent runs the listeners at once, our own included
      try {
        document.dispatchEvent(new CustomEvent("pinpanel:change", { detail: pin }));
      } finally {
        telling = false;
      }
    }
    const row = rowOf(pin.pin);
    if (!row) return;
    const shown = Number(row.dataset.seq || 0);
    if (pin.seq < shown) return;
    const changed = pin.seq > shown;
    row.dataset.seq = String(pin.seq);
    row.classList.toggle("on", pin.state);
    row.classList.toggle("off", !pin.state);
    row.querySelector(".state-text").textContent = pin.state ? "On" : "Off";
    const toggle = row.querySelector("button.toggle");
    if (toggle) toggle.setAttribute("aria-pressed", pin.state ? "true" : "false");
    setPulse(row, pin.pulse_until || "", now);
    if (flash && changed) highlight(row);
  }

  // While a pulse runs the row's buttons are disabled; they come back when the turn-off
  // arrives, or when the pulse should have ended (a pulse cancelled by a command that
  // changed nothing is not an event of its own).
  function setPulse(row, until, now) {
    row.dataset.pulseUntil = until;
    clearTimeout(Number(row.dataset.pulseTimer || 0));
    const busy = Boolean(until) && row.dataset.autoOff !== "true";
    refreshButtons(row, busy);
    if (!until) return;
    const left = Date.parse(until) - Date.parse(now || new Date().toISOString());
    const ms = Math.min(Math.max(Number.isFinite(left) ? left : 0, 0), 3_600_000) + 250;
    row.dataset.pulseTimer = String(setTimeout(() => {
      if (row.dataset.pulseUntil === until) setPulse(row, "", null);
    }, ms));
  }

  function refreshButtons(row, busy) {
    row.classList.toggle("pulsing", busy);
    for (const button of row.querySelectorAll("button")) {
      button.disabled = busy || button.dataset.pending === "true";
    }
  }

  function highlight(row) {
    row.classList.remove("flash");
    void row.offsetWidth; // restart the animation
    row.classList.add("flash");
  }

  function onSnapshot(event) {
    const data = JSON.parse(event.data);
    if (data.seq < lastSeq) {
      // The server's numbers went back (its database was replaced): trust the snapshot.
      for (const row of table.querySelectorAll("tr[data-pin]")) row.dataset.seq = "0";
      for (const history of histories.values()) history.reset();
    }
    lastSeq = data.seq;
    skew = (Date.parse(data.at) - Date.now()) || skew;
    for (const pin of data.pins) apply(pin, data.at, false);
    const gaps = data.pins.filter((pin) => histories.get(pin.pin)?.guess(pin))
      .map((pin) => pin.pin);
    redrawAll();
    catchUp(gaps);
  }

  function onChange(event) {
    const change = JSON.parse(event.data);
    if (change.seq <= lastSeq) return; // stale or repeated
    lastSeq = change.seq;
    apply(change.pin, change.at, true);
    const history = histories.get(change.pin.pin);
    if (history?.add({ seq: change.seq, at: change.at, state: change.pin.state,
      actor: change.actor, cause: change.cause })) {
      history.redraw(serverNow());
    }
  }

  function connect() {
    clearTimeout(retryTimer);
    source = new EventSource(table.dataset.events);
    source.addEventListener("open", () => {
      retryDelay = 1000;
      setStatus("connected", "Connected");
    });
    source.addEventListener("snapshot", onSnapshot);
    source.addEventListener("change", onChange);
    // Sensor readings are for sensors.js, which shares this one connection.
    source.addEventListener("reading", (event) => {
      document.dispatchEvent(new CustomEvent("pinpanel:reading", { detail: JSON.parse(event.data) }));
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error such as 401 or 503): try again ourselves.
        source.close();
        setStatus("reconnecting", "Reconnecting…");
        retryTimer = setTimeout(connect, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30000);
      } else {
        setStatus("reconnecting", "Reconnecting…"); // EventSource retries by itself
      }
    });
  }

  async function post(row, button, action) {
    const headers = { Accept: "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    button.dataset.pending = "true";
    button.disabled = true;
    try {
      const response = await fetch(`${api}/${row.dataset.pin}/${action}`, {
        method: "POST", headers, credentials: "same-origin",
      });
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        showError((body && (body.detail || body.Error)) || `${action} failed (${response.status})`);
        return;
      }
      showError("");
      // The Date header is the server's clock (to the second) for the pulse countdown.
      const now = response.headers.get("date") || body?.changed_at;
      if (body && typeof body.seq === "number") apply(body, now, true);
    } catch (error) {
      showError(`${action} failed: the server cannot be reached`);
    } finally {
      delete button.dataset.pending;
      refreshButtons(row, row.classList.contains("pulsing"));
    }
  }

  // A pin switched elsewhere on the page (the header diagram) updates its row too.
  document.addEventListener("pinpanel:change", (event) => {
    const pin = event.detail;
    if (!telling && pin && typeof pin.pin === "number" && typeof pin.seq === "number") {
      apply(pin, pin.changed_at, true, false);
    }
  });

  table.addEventListener("submit", (event) => {
    const form = event.target;
    const row = form.closest("tr[data-pin]");
    const button = form.querySelector("button.toggle");
    if (!row || !button) return;
    event.preventDefault();
    post(row, button, "toggle");
  });

  table.addEventListener("click", (event) => {
    const button = event.target.closest("button.pulse");
    if (!button) return;
    post(button.closest("tr[data-pin]"), button, "pulse");
  });

  for (const button of table.querySelectorAll("button.pulse")) button.hidden = false;
  for (const row of table.querySelectorAll("tr[data-pin]")) {
    if (row.dataset.pulseUntil) setPulse(row, row.dataset.pulseUntil, table.dataset.now);
  }
  setStatus("connecting", "Connecting…");
  connect();
  setInterval(redrawAll, 60_000); // the bars move on with the clock, as a reload would
}
