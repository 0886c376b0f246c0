// pinpanel sliders: a pwm pin's level and a servo's angle, live.
//
// Without this file each slider is a plain form (drag, then Set). With it, dragging sends
// the value through the API as it moves, at most one request per THROTTLE_MS plus the
// last value when the slider stops, and each slider follows the pin's changes from
// elsewhere (another page, MQTT, a fade), heard as the page's "pinpanel:change" events.
// A slider being held is not moved under the finger; answers are applied by seq, so a
// late answer never moves it back.

const THROTTLE_MS = 150;
const csrf = document.querySelector('meta[name="csrf-token"]')?.content;
const sliders = new Map();

for (const form of document.querySelectorAll("form.slider[data-pin]")) {
  sliders.set(Number(form.dataset.pin), new Slider(form));
}

document.addEventListener("pinpanel:change", (event) => {
  const pin = event.detail;
  if (pin && typeof pin.pin === "number") sliders.get(pin.pin)?.follow(pin);
});

function Slider(form) {
  const input = form.querySelector('input[type="range"]');
  const output = form.querySelector("output");
  const row = form.closest("tr[data-pin]");
  const servo = form.dataset.mode === "servo";
  const unit = servo ? "°" : "%";
  let seq = Number(row?.dataset.seq || 0);
  let held = false;
  let lastSent = 0;
  let sentValue = null;
  let timer = null;

  const show = (text) => {
    output.textContent = text;
    input.setAttribute("aria-valuetext", text);
  };
  const shown = () => `${Number(input.value)}${unit}`;

  async function send(body) {
    lastSent = Date.now();
    const headers = { Accept: "application/json", "Content-Type": "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    try {
      const response = await fetch(form.dataset.api, {
        method: "PUT", headers, credentials: "same-origin", body: JSON.stringify(body),
      });
      const pin = await response.json().catch(() => null);
      if (!response.ok) {
        console.warn("pinpanel: setting the slider failed:", pin?.detail || response.status);
        return;
      }
      // The row and the header diagram hear it as every change (live.js applies it).
      document.dispatchEvent(new CustomEvent("pinpanel:change", { detail: pin }));
    } catch (error) {
      console.warn("pinpanel: the server cannot be reached:", error);
    }
  }

  function sendValue() {
    clearTimeout(timer);
    timer = null;
    const value = Number(input.value);
    if (value === sentValue) return;
    sentValue = value;
    send(servo ? { angle: value } : { level: Math.round(value * 100) / 10000 });
  }

  input.addEventListener("pointerdown", () => { held = true; });
  input.addEventListener("input", () => {
    show(shown());
    const wait = lastSent + THROTTLE_MS - Date.now();
    if (wait <= 0) sendValue();
    else if (timer === null) timer = setTimeout(sendValue, wait);
  });
  input.addEventListener("change", () => { held = false; sendValue(); });
  for (const end of ["pointerup", "pointercancel", "blur"]) {
    input.addEventListener(end, () => { held = false; });
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (event.submitter?.name === "detach") {
      sentValue = null;
      send({ angle: null });
    } else {
      sentValue = null;
      sendValue();
    }
  });

  this.follow = (pin) => {
    if (typeof pin.seq !== "number" || pin.seq < seq) return;
    seq = pin.seq;
    const value = servo ? pin.angle : pin.level;
    if (servo && value === null) {
      show("detached");
      return;
    }
    if (typeof value !== "number") return;
    const shownValue = servo ? value : Math.round(value * 1000) / 10;
    if (!held) {
      input.value = String(shownValue);
      sentValue = Number(input.value);
    }
    if (!held) show(shown());
  };
}
