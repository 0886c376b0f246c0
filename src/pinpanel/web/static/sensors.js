// pinpanel sensors: live values and charts from the event stream's reading events.
//
// live.js owns the one EventSource and re-dispatches each `reading` event on the document
// as `pinpanel:reading`. Here each one sets its sensor's values (or its error: an error is
// never shown as a number), extends each chart's line with the new point on the scale the
// server drew (the svg's data- attributes), and fetches a fresh chart when a value leaves
// that scale or time runs past its right edge. The 24 h / 7 d / 30 d links swap the chart
// in place instead of opening the bare SVG.

const section = document.querySelector("section.sensors");
if (section) start(section);

function start(section) {
  const refetching = new Set();

  function format(value, precision) {
    return typeof value === "number" ? value.toFixed(precision) : "…";
  }

  async function load(box, href) {
    if (refetching.has(box)) return;
    refetching.add(box);
    try {
      const response = await fetch(href, { credentials: "same-origin" });
      if (!response.ok) return;
      const text = await response.text();
      const parsed = new DOMParser().parseFromString(text, "image/svg+xml").documentElement;
      if (parsed.nodeName !== "svg") return;
      parsed.removeAttribute("xmlns");
      box.replaceChildren(document.importNode(parsed, true));
    } catch (error) {
      console.warn("pinpanel: could not load a chart:", error);
    } finally {
      refetching.delete(box);
    }
  }

  function currentHref(reading) {
    return reading.querySelector('.chart-ranges a[aria-current="true"]')?.href;
  }

  function extend(reading, at, value) {
    const box = reading.querySelector(".chart-box");
    const svg = box?.querySelector("svg.chart");
    if (!svg) return;
    const d = svg.dataset;
    const since = Number(d.since), until = Number(d.until);
    const lo = Number(d.lo), hi = Number(d.hi);
    const width = Number(d.width), height = Number(d.height);
    if (at > until || value < lo || value > hi || d.range !== "24h") {
      const href = currentHref(reading);
      if (href && d.range === "24h") load(box, href);
      return;
    }
    const x = ((at - since) / (until - since) * width).toFixed(1);
    const y = (height - (value - lo) / (hi - lo) * height).toFixed(1);
    const path = svg.querySelector("path.chart-line");
    const old = path.getAttribute("d") || "";
    path.setAttribute("d", old ? `${old} L${x} ${y}` : `M${x} ${y}`);
    svg.dataset.live = String(Number(svg.dataset.live || 0) + 1);
  }

  document.addEventListener("pinpanel:reading", (event) => {
    const sample = event.detail;
    if (!sample || typeof sample.sensor !== "string") return;
    const card = section.querySelector(`article[data-sensor="${CSS.escape(sample.sensor)}"]`);
    if (!card) return;
    const failed = typeof sample.error === "string";
    card.classList.toggle("failed", failed);
    const error = card.querySelector(".sensor-error");
    if (error) {
      error.hidden = !failed;
      error.querySelector(".error-code").textContent = failed ? sample.error : "";
      error.querySelector(".error-detail").textContent = failed && sample.detail ? ` (${sample.detail})` : "";
    }
    const at = Date.parse(sample.at) / 1000;
    for (const reading of card.querySelectorAll(".reading[data-reading]")) {
      const valueEl = reading.querySelector(".reading-value");
      const value = sample.values ? sample.values[reading.dataset.reading] : undefined;
      if (failed) {
        valueEl.textContent = "error";
      } else if (typeof value === "number") {
        valueEl.textContent = format(value, Number(reading.dataset.precision || 2));
        extend(reading, at, value);
      }
    }
    const time = card.querySelector(".sensor-at");
    if (time) {
      const stamp = document.createElement("time");
      stamp.dateTime = sample.at;
      stamp.textContent = new Date(sample.at).toLocaleTimeString([], { hour12: false });
      time.replaceChildren("read ", stamp);
    }
  });

  section.addEventListener("click", (event) => {
    const link = event.target.closest(".chart-ranges a[data-range]");
    if (!link) return;
    event.preventDefault();
    const reading = link.closest(".reading");
    for (const other of reading.querySelectorAll(".chart-ranges a")) {
      if (other === link) other.setAttribute("aria-current", "true");
      else other.removeAttribute("aria-current");
    }
    load(reading.querySelector(".chart-box"), link.href);
  });
}
