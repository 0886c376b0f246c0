// The automation page, live: when the loop protection stops a rule, its row says so at
// once, and the note goes when the rule runs again. The page itself already shows a
// stopped rule when it is loaded, so without JavaScript nothing is missing but the news.
// The event stream sends rule_stopped for every rule stopped now on each (re)connect, so a
// dropped connection cannot leave a row out of date.
"use strict";

const table = document.querySelector("table.rules[data-events]");

function mark(rule, detail) {
  const note = document.getElementById(`rule-${rule}`)?.querySelector(".stopped");
  if (!note) return; // a rule added since the page was loaded
  note.textContent = detail ? ` stopped: ${detail}` : "";
  note.hidden = !detail;
}

if (table && "EventSource" in window) {
  const events = new EventSource(table.dataset.events);
  events.addEventListener("rule_stopped", (event) => {
    const data = JSON.parse(event.data);
    mark(data.rule, data.detail);
  });
  events.addEventListener("rule_resumed", (event) => mark(JSON.parse(event.data).rule, ""));
}
