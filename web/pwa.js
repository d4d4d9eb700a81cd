// Offline use: registers the service worker (web/sw.js), offers a new version once it has
// installed, asks for persistent storage, shows what is stored, and forgets on request. The build id
// and the cache that holds it are decided by `cargo xtask build` (version.json); this module only
// shows and asks.

const $ = (id) => document.getElementById(id);

/** {build, cache} of the build this page runs (served from that build's cache once installed). */
let build = null;

/** Sets up offline use; the service worker is registered (and so installs) once `when` resolves. */
export async function startOffline(when = Promise.resolve()) {
  $('settings').addEventListener('toggle', showStorage);
  $('forget').addEventListener('click', forget);
  try {
    const response = await fetch(new URL('../version.json', import.meta.url));
    if (response.ok) build = await response.json();
  } catch {
    // Shown as unknown below; everything else still works.
  }
  $('version').textContent = `Version: ${build?.build ?? 'unknown'}`;
  if (build) document.body.dataset.build = build.build; // test hook
  if (!('serviceWorker' in navigator)) {
    setOffline('unavailable', 'Offline use: not offered by this browser');
    return;
  }
  let controlled = Boolean(navigator.serviceWorker.controller);
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    // The first install takes the page over: nothing to reload. Any later change is a new build
    // the user accepted (here or in another tab): reload, so old and new files never mix.
    if (controlled) window.location.reload();
    controlled = true;
  });
  let registration;
  try {
    await when;
    registration = await navigator.serviceWorker.register(new URL('../sw.js', import.meta.url));
  } catch (err) {
    setOffline('unavailable', `Offline use: unavailable (${err.message ?? err})`);
    return;
  }
  if (!registration) return; // registration blocked (the end-to-end tests of the page itself)
  const watch = (worker) => worker?.addEventListener('statechange', () => {
    if (worker.state === 'installed' && navigator.serviceWorker.controller) offerUpdate(worker);
    // An install that failed (a file did not arrive, or not with this build's digest) is tried
    // again on the next visit; until then the page works online only.
    if (worker.state === 'redundant' && !navigator.serviceWorker.controller) {
      setOffline('failed', 'Offline use: could not store the app this time (it will try again on the next visit)');
    }
  });
  if (registration.waiting && navigator.serviceWorker.controller) offerUpdate(registration.waiting);
  watch(registration.installing);
  registration.addEventListener('updatefound', () => watch(registration.installing));
  await navigator.serviceWorker.ready;
  if (!navigator.serviceWorker.controller) {
    await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
  }
  setOffline('ready', 'Offline use: ready (the app and its models are stored on this device)');
  // Stored data the browser keeps under storage pressure; browsers decide themselves, often silently.
  await navigator.storage?.persist?.().catch(() => false);
  await showStorage();
}

/** A new build has installed in the background: offer it; accepting activates it and reloads. */
function offerUpdate(worker) {
  $('update').hidden = false;
  $('update-reload').onclick = () => {
    $('update-reload').disabled = true;
    worker.postMessage({ type: 'skip-waiting' });
  };
  document.body.dataset.update = 'ready'; // test hook
}

function setOffline(state, text) {
  document.body.dataset.offline = state; // test hook
  $('offline').textContent = text;
}

async function showStorage() {
  const line = $('storage');
  if (!navigator.storage?.estimate) {
    line.textContent = 'Storage: not reported by this browser';
    return;
  }
  const [{ usage = 0 }, persisted] = await Promise.all([
    navigator.storage.estimate(),
    navigator.storage.persisted?.() ?? Promise.resolve(false),
  ]);
  line.textContent = `Stored on this device: ${(usage / 1e6).toFixed(1)} MB, `
    + (persisted ? 'persistent (kept by the browser)' : 'not persistent (the browser may clear it when space runs short)');
  line.dataset.persisted = String(persisted); // test hooks
  line.dataset.usage = String(usage);
}

/** How long one step of "Forget everything" may take before it is reported as not done. */
const FORGET_STEP_S = 10;

/**
 * "Forget everything on this device": settings and anything kept of opened files go; the app and its
 * models (this build's cache and the service worker) stay unless the user asks for them to go too.
 */
async function forget() {
  const everything = $('forget-app').checked;
  const status = $('forget-status');
  // Each step on its own: one that fails must not keep the others from running, nor leave the
  // user believing everything went. A step the browser does not answer is given up after a while
  // rather than leaving "Forgetting…" on screen for good; the status names the step under way.
  const failed = [];
  const step = async (what, work) => {
    status.textContent = `Forgetting ${what}…`;
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the browser did not answer within ${FORGET_STEP_S} s`)), FORGET_STEP_S * 1000);
    });
    try {
      await Promise.race([work(), late]);
    } catch (err) {
      failed.push(`${what} (${err?.message ?? err})`);
    } finally {
      clearTimeout(timer);
    }
  };
  await step('settings', async () => {
    localStorage.clear();
    sessionStorage.clear();
    for (const db of (await indexedDB.databases?.()) ?? []) indexedDB.deleteDatabase(db.name);
  });
  // No `caches` outside a secure context (plain http other than localhost): nothing was kept there.
  await step('stored files', async () => {
    const names = ((await self.caches?.keys()) ?? []).filter((name) => everything || name !== build?.cache);
    await Promise.all(names.map((name) => caches.delete(name)));
  });
  if (everything) {
    await step('the offline app', async () => {
      const registrations = (await navigator.serviceWorker?.getRegistrations()) ?? [];
      await Promise.all(registrations.map((registration) => registration.unregister()));
      setOffline('removed', 'Offline use: removed from this device (Bedside downloads again when next opened)');
    });
  }
  status.textContent = failed.length
    ? `Could not forget everything: ${failed.join('; ')}. Try again, or clear this site's data in the browser's settings.`
    : everything
      ? 'Forgotten: settings, and the app and its models.'
      : 'Forgotten: settings. The app and its models stay for offline use.';
  await showStorage();
}
