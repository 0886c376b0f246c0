// pinpanel's page, as an app: registers the service worker, and makes the header diagram
// switch pins without a page reload and follow live changes. Everything here is an
// enhancement: with scripts off the diagram's buttons are plain form posts.
//
// Live updates arrive as a DOM event, so this file and live.js (the event stream) need
// not know each other: whoever learns a pin's new state dispatches
//   document.dispatchEvent(new CustomEvent("pinpanel:change", {detail: pin}))
// with `pin` as the API reports it ({pin, id, name, mode, state, seq, ...}).
"use strict";

(() => {
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("/sw.js", {scope: "/"}).catch((error) => {
      console.warn("pinpanel: service worker not registered:", error);
    });
  }

  const seqOf = (el) => Number(el.dataset.seq || 0);

  function showDiagramPin(pin) {
    const slot = document.querySelector(`.hd-slot[data-pin="${pin.pin}"]`);
    if (!slot || (typeof pin.seq === "number" && pin.seq < seqOf(slot))) {
      return; // not on the diagram, or older than what is shown
    }
    if (typeof pin.seq === "number") {
      slot.dataset.seq = String(pin.seq);
    }
    slot.classList.toggle("on", Boolean(pin.state));
    slot.classList.toggle("off", !pin.state);
    const state = slot.querySelector(".hd-state");
    if (state) {
      state.textContent = pin.state ? "On" : "Off";
    }
    const button = slot.querySelector("button");
    if (button) {
      button.setAttribute("aria-pressed", pin.state ? "true" : "false");
    }
  }

  document.addEventListener("pinpanel:change", (event) => {
    if (event.detail && typeof event.detail.pin === "number") {
      showDiagramPin(event.detail);
    }
  });

  function csrfHeaders() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta && meta.content ? {"X-CSRF-Token": meta.content} : {};
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("hd-form")) {
      return;
    }
    event.preventDefault();
    const button = form.querySelector("button");
    if (button) {
      button.disabled = true;
    }
    try {
      const response = await fetch(`/api/v1/pins/${form.dataset.pin}/toggle`, {
        method: "POST", credentials: "same-origin",
        headers: {"Accept": "application/json", ...csrfHeaders()},
      });
      if (!response.ok) {
        throw new Error(`HTTP ${response.status}`);
      }
      const pin = await response.json();
      document.dispatchEvent(new CustomEvent("pinpanel:change", {detail: pin}));
    } catch (error) {
      // Let the server answer the plain form post instead: it shows what went wrong.
      console.warn("pinpanel: switching by fetch failed, posting the form:", error);
      form.submit();
    } finally {
      if (button) {
        button.disabled = false;
      }
    }
  });
})();
