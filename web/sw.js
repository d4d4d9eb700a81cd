// The service worker: the app works offline, and a build is never mixed with another.
// `cargo xtask build` writes /sw.js as this file after a line `const BUILD = {id, cache, prefix,
// files}`: the build's id, the one cache it keeps its files in (named prefix + id), and each file's
// path → SHA-256 (SRI form). Install fetches every file of the build with its integrity (a byte of
// another build fails the install) into that cache; only then may the worker take over, and only
// when the page says so (the user accepted "A new version is ready"); on activation every other
// build's cache goes.

const SCOPE = new URL(self.registration.scope);

self.addEventListener('install', (event) => event.waitUntil(precache()));

async function precache() {
  const cache = await caches.open(BUILD.cache);
  try {
    await Promise.all(Object.entries(BUILD.files).map(async ([path, integrity]) => {
      const url = new URL(path, SCOPE);
      // 'no-cache': an HTTP-cached copy (what the page itself has just loaded) only once the server
      // says it is the current file (304 to its ETag); the integrity check refuses any byte of
      // another build either way.
      const response = await fetch(url, { cache: 'no-cache', integrity });
      if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
      await cache.put(url, response);
    }));
  } catch (err) {
    await caches.delete(BUILD.cache); // a half-filled cache is never used
    throw err;
  }
}

self.addEventListener('activate', (event) => event.waitUntil((async () => {
  for (const name of await caches.keys()) {
    if (name.startsWith(BUILD.prefix) && name !== BUILD.cache) await caches.delete(name);
  }
  // The first install takes the open page over at once (nothing older is running); an update is
  // only activated when the page asked for it, and the page then reloads.
  await self.clients.claim();
})()));

self.addEventListener('message', (event) => {
  if (event.data?.type === 'skip-waiting') self.skipWaiting();
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  // Another origin is the browser's business (the page's CSP refuses it anyway).
  const ours = url.origin === SCOPE.origin && url.pathname.startsWith(SCOPE.pathname);
  if (event.request.method !== 'GET' || !ours) return;
  const path = url.pathname.slice(SCOPE.pathname.length) || 'index.html';
  // The relay's API (shares and replies, web/share.js) is live data, never part of a build.
  if (path.startsWith('api/')) return;
  event.respondWith(answer(path, event.request));
});

/** This build's copy of `path`; a path that is not part of the build is a 404, never a network request. */
async function answer(path, request) {
  if (!Object.hasOwn(BUILD.files, path)) {
    return new Response(`${path} is not part of Bedside ${BUILD.id}\n`, {
      status: 404, headers: { 'Content-Type': 'text/plain; charset=utf-8' },
    });
  }
  const cache = await caches.open(BUILD.cache);
  // Only this build's cache: never an old build's file. Should the browser have evicted it, the
  // network serves the file (and the page's own checks apply) rather than failing.
  return (await cache.match(new URL(path, SCOPE))) ?? fetch(request);
}
