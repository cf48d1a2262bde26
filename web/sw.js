// Service worker: keeps the app shell (page, JS, wasm, CSS, catalog) so the app
// starts with no network after one visit. Models never pass through here: the
// engine worker stores them in OPFS itself (resumable, verified).
const VERSION = '__BUILD_ID__';
const CACHE = 'ahma-shell-' + VERSION;
const SHELL = ['index.html', 'ahma_web.js', 'ahma_web_bg.wasm', 'worker.js', 'style.css', 'catalog.json', 'icon.svg'];
// Fetched from the network first (editable without a rebuild), the cache when offline.
const NETWORK_FIRST = new Set(['catalog.json']);

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((c) => c.addAll(SHELL.map((p) => new Request(p, { cache: 'reload' }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('ahma-shell-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

function shellPath(request) {
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return null;
  const scope = new URL(self.registration.scope).pathname;
  if (!url.pathname.startsWith(scope)) return null;
  const rel = url.pathname.slice(scope.length);
  if (request.mode === 'navigate') return 'index.html';
  return SHELL.includes(rel) ? rel : null;
}

async function fromCache(path) {
  const cache = await caches.open(CACHE);
  return cache.match(path, { ignoreSearch: true });
}

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET' || req.headers.has('range')) return;
  const path = shellPath(req);
  if (!path) return;
  if (NETWORK_FIRST.has(path)) {
    event.respondWith(
      fetch(req).then(async (resp) => {
        if (resp.ok) (await caches.open(CACHE)).put(path, resp.clone());
        return resp;
      }).catch(async () => (await fromCache(path)) || Response.error()),
    );
    return;
  }
  event.respondWith(
    fromCache(path).then((hit) => hit || fetch(req).then(async (resp) => {
      if (resp.ok) (await caches.open(CACHE)).put(path, resp.clone());
      return resp;
    })),
  );
});
