"""The hub's page: every Pi and its pins, live, searchable, paged for a phone.

The page is one small HTML document; the script keeps the whole fleet in memory (from the
hub's event stream: a snapshot, then one event per changed device) and draws only the
current page of Pis, so a thousand Pis cost a thousand small objects and twenty drawn
cards. Everything a Pi said is put into the page as text (``textContent``), never as HTML,
and a Pi's link is shown only when it is an http(s) address: a Pi cannot script the hub.
Script and style are separate files, as the server's content security policy requires.
"""

from __future__ import annotations

from html import escape

#: Pis drawn per page.
PAGE_SIZE = 20


def html(csrf: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{escape(csrf)}">
<title>pinpanel hub</title><link rel="stylesheet" href="hub/hub.css"></head>
<body><header><h1>pinpanel hub</h1>
<p id="summary" role="status">connecting…</p></header>
<main>
<form id="filters" role="search" aria-label="Filter Pis and pins">
<label>Search <input id="q" type="search" placeholder="Pi or pin name"></label>
<label>Pi <input id="pi" list="pis" placeholder="any Pi"></label><datalist id="pis"></datalist>
<label>Group <select id="group"><option value="">any group</option></select></label>
<label>State <select id="state"><option value="">any state</option>
<option value="on">pins on</option><option value="off">pins off</option>
<option value="online">Pis online</option><option value="offline">Pis offline</option>
</select></label>
</form>
<form id="fleet" aria-label="Fleet-wide command">
<fieldset><legend>Fleet-wide command</legend>
<label>Target <select id="fleet-target"><option value="selection">selected pins</option>
</select></label>
<label>Action <select id="fleet-action"><option value="off">off</option>
<option value="on">on</option><option value="toggle">toggle</option></select></label>
<button type="submit">Send</button> <span id="fleet-status" role="status"></span>
</fieldset>
<table id="results" hidden><caption>Per-Pi results</caption>
<thead><tr><th>Pi</th><th>target</th><th>result</th><th>seq</th></tr></thead>
<tbody></tbody></table>
</form>
<nav class="pager" aria-label="Pages"><button id="prev" type="button">&lsaquo; prev</button>
<span id="page"></span><button id="next" type="button">next &rsaquo;</button></nav>
<div id="devices"></div>
</main><script src="hub/hub.js" data-page-size="{PAGE_SIZE}"></script></body></html>
"""


STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#111}
header{background:#1d3557;color:#fff;padding:.5rem 1rem}h1{font-size:1.2rem;margin:0}
header p{margin:.2rem 0 0}main{padding:.5rem;max-width:60rem;margin:auto}
form{display:flex;flex-wrap:wrap;gap:.5rem;margin:.5rem 0}
fieldset{display:flex;flex-wrap:wrap;gap:.5rem;border:1px solid #bbb;width:100%}
label{display:flex;flex-direction:column;font-size:.85rem}
input,select,button{font-size:1rem;min-height:2.2rem}
.dev{background:#fff;border:1px solid #ccc;border-radius:.4rem;margin:.5rem 0;padding:.5rem}
.dev.offline{opacity:.7;border-style:dashed}.dev h2{font-size:1rem;margin:0;display:flex;
gap:.5rem;flex-wrap:wrap;align-items:baseline}
.badge{font-size:.75rem;padding:0 .4rem;border-radius:1rem;background:#2a9d8f;color:#fff}
.offline .badge{background:#6c757d}.pin{display:flex;flex-wrap:wrap;gap:.4rem;
align-items:center;border-top:1px solid #eee;padding:.3rem 0}.pin .name{flex:1 1 8rem}
.state-on{color:#0a7d32;font-weight:bold}.state-off{color:#555}
.result{font-size:.85rem}.refused,.timeout,.not_sent{color:#b00020}
.pager{display:flex;gap:.5rem;align-items:center;justify-content:center}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.2rem .4rem;
text-align:left;font-size:.9rem}
"""

SCRIPT = r"""
"use strict";
(() => {
const SIZE = Number(document.currentScript.dataset.pageSize) || 20;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const devices = new Map();
const results = new Map();
const selected = new Set();
let page = 0, connected = false, drawing = false;
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v; else if (k === "cls") node.className = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
};
const describe = (r) => r.status === "confirmed" ? `confirmed in ${Math.round(r.ms)} ms`
  : r.status === "refused" ? `refused (${r.reason}${r.detail ? ": " + r.detail : ""})`
  : r.status === "timeout" ? (r.detail || "no answer")
  : `not sent (${r.reason})`;

function filters() {
  return {q: $("q").value.trim().toLowerCase(), pi: $("pi").value.trim(),
          group: $("group").value, state: $("state").value};
}
function pinsShown(d, f) {
  const inGroup = f.group ? new Set((d.groups.find((g) => g.id === f.group) || {pins: []}).pins)
    : null;
  const devHit = !f.q || d.device_id.toLowerCase().includes(f.q)
    || (d.name || "").toLowerCase().includes(f.q);
  return d.pins.filter((p) => (!inGroup || inGroup.has(p.id))
    && (f.state !== "on" || p.state === true) && (f.state !== "off" || p.state === false)
    && (devHit || p.id.toLowerCase().includes(f.q)
        || (p.name || "").toLowerCase().includes(f.q)));
}
function visible() {
  const f = filters();
  const out = [];
  for (const d of [...devices.values()].sort((a, b) => a.device_id.localeCompare(b.device_id))) {
    if (f.pi && d.device_id !== f.pi) continue;
    if (f.state === "online" && !d.online) continue;
    if (f.state === "offline" && d.online) continue;
    if (f.group && !d.groups.some((g) => g.id === f.group)) continue;
    const pins = pinsShown(d, f);
    const devHit = !f.q || d.device_id.toLowerCase().includes(f.q)
      || (d.name || "").toLowerCase().includes(f.q);
    if (!pins.length && !(devHit && !f.group && !["on", "off"].includes(f.state))) continue;
    out.push([d, pins]);
  }
  return out;
}
function card(d, pins) {
  const title = el("h2", {}, el("span", {text: d.name || d.device_id}),
    el("span", {cls: "badge", text: d.online ? "online" : d.status}));
  if (/^https?:\/\//.test(d.url || "")) {
    title.append(el("a", {href: d.url, target: "_blank", rel: "noopener",
                          text: "open its page"}));
  }
  const meta = el("small", {text: `${d.device_id} · v${d.version || "?"} · last seen ${
    d.last_seen || "never"}${d.controllable ? "" : " · found on the LAN (not controlled)"}`});
  const box = el("section", {cls: "dev " + (d.online ? "online" : "offline"),
                             "data-device": d.device_id}, title, meta);
  for (const p of pins) {
    const key = `${d.device_id}/${p.id}`;
    const row = el("div", {cls: "pin", "data-pin": p.id});
    const check = el("input", {type: "checkbox", "aria-label": `select ${p.name || p.id}`});
    check.checked = selected.has(key);
    check.addEventListener("change", () => {
      if (check.checked) selected.add(key); else selected.delete(key);
    });
    const level = p.level != null ? ` ${Math.round(p.level * 100)}%` : "";
    row.append(check, el("span", {cls: "name", text: p.name || p.id}),
      el("span", {cls: "state-" + (p.state ? "on" : "off"),
                  text: p.state == null ? "?" : (p.state ? "ON" : "OFF") + level}),
      el("small", {text: `seq ${p.seq ?? "-"}`}));
    if (p.kind !== "input" && d.controllable) {
      for (const action of ["on", "off", "toggle"]) {
        const b = el("button", {type: "button", "data-action": action, text: action});
        b.addEventListener("click", () => command({action,
          targets: [{device: d.device_id, pin: p.id}]}, [key]));
        row.append(b);
      }
    }
    const r = results.get(key);
    if (r) row.append(el("span", {cls: "result " + r.status, text: describe(r)}));
    box.append(row);
  }
  return box;
}
function draw() {
  drawing = false;
  const shown = visible();
  const pages = Math.max(1, Math.ceil(shown.length / SIZE));
  page = Math.min(page, pages - 1);
  const list = $("devices");
  list.replaceChildren(...shown.slice(page * SIZE, page * SIZE + SIZE)
    .map(([d, pins]) => card(d, pins)));
  $("page").textContent = `page ${page + 1} of ${pages} (${shown.length} Pis)`;
  $("prev").disabled = page === 0; $("next").disabled = page >= pages - 1;
  const all = [...devices.values()];
  const online = all.filter((d) => d.online).length;
  $("summary").textContent = `${all.length} Pis, ${online} online, ${all.length - online
    } offline${connected ? "" : " · hub not connected to the broker"}`;
}
function later() { if (!drawing) { drawing = true; requestAnimationFrame(draw); } }
function options() {
  const groups = new Set(), ids = [];
  for (const d of devices.values()) {
    ids.push(d.device_id);
    d.groups.forEach((g) => groups.add(g.id));
  }
  for (const [sel, keep] of [[$("group"), ""], [$("fleet-target"), "selection"]]) {
    const current = sel.value;
    const head = [...sel.options].filter((o) => o.value === keep);
    sel.replaceChildren(...head, ...[...groups].sort().map((g) => el("option", {value: g,
      text: sel.id === "group" ? g : `group ${g} on every Pi`})));
    sel.value = [...sel.options].some((o) => o.value === current) ? current : keep;
  }
  $("pis").replaceChildren(...ids.sort().map((id) => el("option", {value: id})));
}
async function command(body, keys) {
  for (const k of keys) results.set(k, {status: "pending", detail: "sending…"});
  let answer;
  try {
    const res = await fetch("api/v1/hub/commands", {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body)});
    answer = await res.json();
    if (!res.ok) throw new Error(answer.detail || res.statusText);
  } catch (err) {
    $("fleet-status").textContent = `failed: ${err.message}`;
    for (const k of keys) results.delete(k);
    later();
    return null;
  }
  for (const r of answer.results) {
    if (!r.target.startsWith("group/")) results.set(`${r.device}/${r.target}`, r);
    else for (const p of r.pins) results.set(`${r.device}/${p.id}`, r);
  }
  later();
  return answer;
}
$("fleet").addEventListener("submit", async (event) => {
  event.preventDefault();
  const target = $("fleet-target").value, action = $("fleet-action").value;
  let body, keys = [];
  if (target === "selection") {
    if (!selected.size) { $("fleet-status").textContent = "select some pins first"; return; }
    keys = [...selected];
    body = {action, targets: keys.map((k) => { const i = k.indexOf("/");
      return {device: k.slice(0, i), pin: k.slice(i + 1)}; })};
  } else body = {action, group: target};
  $("fleet-status").textContent = "sending…";
  const started = performance.now();
  const answer = await command(body, keys);
  if (!answer) return;
  const c = answer.counts;
  $("fleet-status").textContent = `${c.confirmed} confirmed, ${c.refused} refused, ${
    c.timeout} no answer, ${c.not_sent} not sent (${Math.round(performance.now() - started)} ms)`;
  const rows = answer.results.map((r) => el("tr", {"data-device": r.device},
    el("td", {text: r.device}), el("td", {text: r.target}),
    el("td", {cls: r.status, text: describe(r)}), el("td", {text: r.seq ?? "-"})));
  $("results").querySelector("tbody").replaceChildren(...rows);
  $("results").hidden = false;
});
for (const id of ["q", "pi", "group", "state"]) {
  $(id).addEventListener("input", () => { page = 0; later(); });
}
$("filters").addEventListener("submit", (e) => e.preventDefault());
$("prev").addEventListener("click", () => { page -= 1; later(); });
$("next").addEventListener("click", () => { page += 1; later(); });
const source = new EventSource("api/v1/hub/stream");
source.addEventListener("snapshot", (e) => {
  const data = JSON.parse(e.data);
  connected = data.connected;
  devices.clear();
  for (const d of data.devices) devices.set(d.base, d);
  options(); later();
  document.body.dataset.ready = "true";
});
source.addEventListener("hub", (e) => { connected = JSON.parse(e.data).connected; later(); });
source.addEventListener("device", (e) => {
  const d = JSON.parse(e.data);
  const fresh = !devices.has(d.base);
  devices.set(d.base, d);
  if (fresh) options();
  later();
});
})();
"""
