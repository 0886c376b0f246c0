// pinpanel's service worker: the page's shell (styles, scripts, icons) comes from a cache,
// so the app opens at once on a slow Wi-Fi link; pin states never do. API answers, the
// event stream, metrics and the page itself always go to the network: a cached "off"
// for a relay that is on would be a lie.
"use strict";

const VERSION = "__PINPANEL_VERSION__";
const CACHE = "pinpanel-shell-" + VERSION;
const SHELL = [
  "/static/pinpanel.css",
  "/static/app.js",
  "/static/live.js",
  "/static/rowhistory.js",
  "/static/sliders.js",
  "/static/manifest.webmanifest",
  "/static/icons/icon.svg",
  "/static/icons/icon-192.png",
  "/static/icons/icon-512.png",
];
const OFFLINE_PAGE =
  '<!doctype html><html lang="en"><meta charset="utf-8">' +
  '<meta name="viewport" content="width=device-width, initial-scale=1">' +
  '<title>pinpanel: offline</title><link rel="stylesheet" href="/static/pinpanel.css">' +
  '<main><h1>pinpanel is not reachable</h1><p>This phone cannot reach the Pi right now. ' +
  'Pin states are never shown from a cache; reload when you are back on its network.</p></main>';

self.addEventListener("install", (event) => {
  // One missing file must not stop the worker from installing: add them one by one.
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => Promise.all(SHELL.map((url) => cache.add(url).catch(() => undefined))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names
        .filter((name) => name.startsWith("pinpanel-shell-") && name !== CACHE)
        .map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

function isShell(url) {
  return url.origin === self.location.origin && url.pathname.startsWith("/static/");
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") {
    return; // form posts and API calls: straight to the network, never cached
  }
  const url = new URL(request.url);
  if (isShell(url)) {
    // Cache first, refreshed in the background: the shell changes only with a new version.
    event.respondWith(caches.open(CACHE).then((cache) => cache.match(request).then((hit) => {
      const fresh = fetch(request).then((response) => {
        if (response.ok) {
          cache.put(request, response.clone());
          // The page names each asset with its digest (?v=): keep only the newest copy
          // (and the plain URL, which the offline page uses).
          cache.keys().then((keys) => Promise.all(keys
            .map((key) => new URL(key.url))
            .filter((old) => old.pathname === url.pathname && old.search &&
              old.search !== url.search)
            .map((old) => cache.delete(old.href))));
        }
        return response;
      });
      return hit || fresh;
    })));
    return;
  }
  if (request.mode === "navigate") {
    // The page is always fetched (it carries live states); offline, say so plainly.
    event.respondWith(fetch(request).catch(() => new Response(OFFLINE_PAGE, {
      status: 503, headers: {"Content-Type": "text/html; charset=utf-8"},
    })));
  }
  // Everything else (/api/, /metrics, the event stream...) is not touched at all.
});
