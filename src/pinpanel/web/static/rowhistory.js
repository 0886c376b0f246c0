// One row's history on the live page: the "since 14:02, by phone" line and the 24-hour bar.
//
// The server draws both (templates/_timeline.html, web/history.py) and says what it drew
// them from: the state 24 hours ago and each change since. This module keeps that list,
// adds each committed change from the event stream, and redraws the bar the way the server
// does (same spans, same minimum width, same label), so the row reads as a fresh page would,
// also as time passes. Times are shown in the server's time zone (its UTC offset is on the
// table), as the server-drawn page shows them.

const SVG = "http://www.w3.org/2000/svg";
const WINDOW_S = 24 * 3600;
const WIDTH = 1440; // SVG units across the bar: one per minute
const MIN_WIDTH = 4; // narrower "on" spans are widened, so a short pulse still shows
const MAX_FLIPS = 2000; // beyond this the oldest are forgotten (drawn as unknown)
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
  "Dec"];

// "45 s", "12 min", "3 h 20 min", as web/history.py's duration().
export function duration(seconds) {
  const whole = Math.round(seconds);
  if (seconds > 0 && seconds < 1) return "under 1 s";
  if (whole < 60) return `${whole} s`;
  const minutes = Math.floor(whole / 60) % 60;
  const hours = Math.floor(whole / 3600);
  if (!hours) return `${minutes} min`;
  return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
}

// "14:02" today, "Tue 14:02" this past week, "3 Nov 14:02" this year, else with the year:
// web/history.py's short_time(), in the server's zone (offsetMin from UTC).
export function shortTime(atMs, nowMs, offsetMin) {
  const local = new Date(atMs + offsetMin * 60000);
  const today = new Date(nowMs + offsetMin * 60000);
  const pad = (n) => String(n).padStart(2, "0");
  const clock = `${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}`;
  const day = (d) => Math.floor(d.getTime() / 86400000);
  if (day(local) === day(today)) return clock;
  const ago = today - local;
  if (ago > 0 && ago < 6 * 86400000) return `${DAYS[local.getUTCDay()]} ${clock}`;
  const date = `${local.getUTCDate()} ${MONTHS[local.getUTCMonth()]}`;
  if (local.getUTCFullYear() === today.getUTCFullYear()) return `${date} ${clock}`;
  return `${date} ${local.getUTCFullYear()} ${clock}`;
}

function merge(spans) {
  const out = [];
  for (const [a, b] of spans) {
    if (out.length && a <= out[out.length - 1][1]) {
      out[out.length - 1][1] = Math.max(b, out[out.length - 1][1]);
    } else {
      out.push([a, b]);
    }
  }
  return out;
}

const round2 = (x) => Math.round(x * 100) / 100;

// The bar's spans from the state at the window's start and the changes in it, as
// web/history.py's build_timeline(): [[x, width], ...] in minutes, 0 = 24 hours ago.
export function spans(first, flips, nowS) {
  const start = nowS - WINDOW_S;
  let state = first;
  let t = start;
  const on = [];
  const unknown = [];
  for (const flip of [...flips, null]) {
    const end = flip === null ? nowS : Math.min(Math.max(flip.t, t), nowS);
    if (end > t) {
      if (state === null) unknown.push([t, end]);
      else if (state) on.push([t, end]);
    }
    t = end;
    if (flip !== null) state = flip.state;
  }
  const scale = WIDTH / WINDOW_S;
  const units = (list, minimum) => merge(list).map(([a, b]) => {
    const width = Math.max((b - a) * scale, minimum);
    return [round2(Math.min((a - start) * scale, WIDTH - width)), round2(width)];
  });
  return {on: units(on, MIN_WIDTH), unknown: units(unknown, 0), changes: flips.length,
    onSeconds: on.reduce((sum, [a, b]) => sum + b - a, 0), hadUnknown: unknown.length > 0};
}

export function label(drawn) {
  if (!drawn.changes && !drawn.onSeconds) {
    return drawn.hadUnknown ? "no record for the last 24 hours"
      : "off for the whole of the last 24 hours";
  }
  const changes = `${drawn.changes} change${drawn.changes !== 1 ? "s" : ""}`;
  return `${changes} in the last 24 hours; on for ${duration(drawn.onSeconds)} in total`;
}

export class RowHistory {
  // row: the <tr>; offsetMin: the server's UTC offset; notable: causes named after the actor.
  constructor(row, offsetMin, notable) {
    this.row = row;
    this.offsetMin = offsetMin;
    this.notable = notable;
    this.svg = row.querySelector("svg.timeline");
    const data = this.svg ? this.svg.dataset : {};
    this.first = data.first === "on" ? true : data.first === "off" ? false : null;
    // {t: epoch s, state, seq, actor, cause}; the server's own list has no seq or actor.
    this.flips = (data.flips || "").split(" ").filter(Boolean).map((item) => {
      const [t, state] = item.split(":");
      return {t: Number(t), state: state === "1", seq: 0};
    });
    // Changes up to this seq are all in the list (the page was drawn at the row's seq).
    this.synced = Number(row.dataset.seq || 0);
  }

  // Forget everything (the server's database was replaced): the snapshot starts afresh.
  reset() {
    this.first = null;
    this.flips = [];
    this.synced = 0;
  }

  // A committed change of this pin: {seq, at, state, actor, cause}. True if it was new.
  add(change) {
    if (change.seq <= this.synced) return false;
    this.flips = this.flips.filter((flip) => !flip.guess);
    this.insert(change);
    this.synced = change.seq;
    this.showSince(change);
    return true;
  }

  insert(change) {
    this.flips.push({t: Date.parse(change.at) / 1000, state: change.state, seq: change.seq,
      guess: Boolean(change.guess)});
    this.flips.sort((a, b) => a.t - b.t || a.seq - b.seq);
    if (this.flips.length > MAX_FLIPS) {
      this.flips.splice(0, this.flips.length - MAX_FLIPS);
      this.first = null;
    }
  }

  // After a gap in the stream (a snapshot): the pin is at `pin` now, by changes not seen.
  // Shown at once as a change of unknown actor, until history() fills in the real ones.
  guess(pin) {
    if (pin.seq <= this.synced || !pin.changed_at) return false;
    this.flips = this.flips.filter((flip) => !flip.guess);
    const change = {seq: pin.seq, at: pin.changed_at, state: pin.state, actor: null,
      cause: null, guess: true};
    this.insert(change);
    this.showSince(change);
    return true;
  }

  // The audit log's rows for this pin (GET /api/v1/history), any order: fills the gap.
  history(rows) {
    const missed = rows.filter((row) => row.seq > this.synced).sort((a, b) => a.seq - b.seq);
    if (!missed.length) return;
    this.flips = this.flips.filter((flip) => !flip.guess);
    for (const row of missed) {
      this.insert({seq: row.seq, at: row.at, state: row.new});
    }
    const last = missed[missed.length - 1];
    this.synced = last.seq;
    this.showSince({seq: last.seq, at: last.at, state: last.new, actor: last.actor,
      cause: last.cause});
  }

  // "since <time>14:02</time>, by <actor> (cause)" after the row's On/Off badge.
  showSince(change) {
    const cell = this.row.querySelector("td.state");
    if (!cell) return;
    let line = cell.querySelector(".last-change");
    if (!line) {
      line = document.createElement("span");
      line.className = "last-change";
      cell.querySelector(".state-text").after(line);
    }
    line.dataset.state = change.state ? "on" : "off";
    const time = document.createElement("time");
    time.dateTime = change.at;
    time.textContent = shortTime(Date.parse(change.at), Date.parse(change.at), this.offsetMin);
    line.replaceChildren(" since ", time);
    if (change.actor) {
      const actor = document.createElement("span");
      actor.className = "actor";
      actor.textContent = change.actor;
      line.append(", by ", actor);
      if (this.notable.includes(change.cause)) line.append(` (${change.cause})`);
    }
  }

  // Redraw the bar (and re-read the "since" time) as of nowMs on the server's clock.
  redraw(nowMs) {
    const time = this.row.querySelector(".last-change time");
    if (time) {
      time.textContent = shortTime(Date.parse(time.dateTime), nowMs, this.offsetMin);
    }
    if (!this.svg) return;
    // Our estimate of the server's clock may trail a change it has just made: a change is
    // never in the future, and one just made shows (widened) at the bar's end.
    const latest = this.flips.length ? this.flips[this.flips.length - 1].t : 0;
    const nowS = Math.max(nowMs / 1000, latest + 0.001);
    const start = nowS - WINDOW_S;
    // Changes that left the window set the state at its start.
    while (this.flips.length && this.flips[0].t < start) this.first = this.flips.shift().state;
    const drawn = spans(this.first, this.flips, nowS);
    for (const old of this.svg.querySelectorAll(".timeline-on, .timeline-unknown")) old.remove();
    const before = this.svg.querySelector(".timeline-tick");
    for (const [kind, list] of [["timeline-unknown", drawn.unknown], ["timeline-on", drawn.on]]) {
      for (const [x, width] of list) {
        const rect = document.createElementNS(SVG, "rect");
        rect.setAttribute("class", kind);
        for (const [name, value] of [["x", x], ["y", 0], ["width", width], ["height", 12]]) {
          rect.setAttribute(name, String(value));
        }
        this.svg.insertBefore(rect, before);
      }
    }
    const name = this.row.querySelector("th")?.textContent.trim() || "";
    const text = `${name}: ${label(drawn)}`;
    this.svg.setAttribute("aria-label", text);
    const title = this.svg.querySelector("title");
    if (title) title.textContent = text;
  }
}
