// Page wiring: opening files, the worker bridge (web/bridge.md), window/level controls and the
// details panel (the diagnosis panel is web/diagnosis.js). Decoding and inference never run here;
// the page only asks the worker and draws what comes back.
import { DiagnosisPanel } from './diagnosis.js';
import { startOffline } from './pwa.js';
import { ReviewMode, ShareBridge, SharePanel, shareLink } from './share.js';
import { Viewer } from './viewer.js';

const $ = (id) => document.getElementById(id);
const canvas = $('view');
const wc = $('wc');
const ww = $('ww');
const frameInput = $('frame');

let nextId = 1;
/** The file the worker holds: {id, name, info, range, defaultWindow, file}; null before the first open. */
let current = null;
/** id → the File asked to open, kept so a restarted worker can open it again. */
const opening = new Map();
/** After a restart: {id, wanted} of the file opened again, whose view is kept as it was. */
let restoring = null;
let workerReady = false; // whether the worker has started (a later `error` event means it died)
let restartsOnFile = 0; // restarts since the user last opened a file
let wanted = null; // {frame, center, width}: what the user asked to see
let drawnId = 0; // id of the file whose pixels are on screen
let userTool = 'window'; // colour images force 'pan' without forgetting this choice
// One render in flight at most; `dirty` remembers that `wanted` moved on meanwhile.
let inFlight = false;
let dirty = false;

let worker = startWorker();
const viewer = new Viewer(canvas, windowDrag);
const shareBridge = new ShareBridge(worker);
const sharePanel = new SharePanel(shareBridge, viewer);
const diagnosis = new DiagnosisPanel(worker, viewer, { diagnosed: (id) => sharePanel.diagnosed(id) });
// Opened by a share link: a read-only review of what the clinician shared (web/share.js).
const link = shareLink(location.hash);
const review = link && new ReviewMode(shareBridge, link, (d, columns, rows) => diagnosis.showShared(d, columns, rows));
if (review) review.open(nextId++);
// The offline install fetches every model, so it waits until the page has what the clinician is
// waiting for: the first diagnosis (or its failure), or the app ready with no file opened for 2 s.
// On a slow first visit it would otherwise share the link with the wasm and the models the first
// diagnosis needs.
let settleInstall;
const installWhen = new Promise((resolve) => { settleInstall = resolve; });
setTimeout(settleInstall, 60_000); // whatever happens
startOffline(installWhen).catch((err) => console.warn(`Bedside: offline use could not be set up: ${err.message ?? err}`));

function setState(state) {
  document.body.dataset.state = state; // test hook, and a styling hook
}

function setStatus(text) {
  $('status').textContent = text;
}

function showError(text) {
  $('error-text').textContent = text;
  $('error').hidden = false;
}

function clearError() {
  $('error').hidden = true;
  if (document.body.dataset.state === 'error') setState(drawnId ? 'opened' : 'ready');
}

async function openFile(file, restore = null) {
  if (!file || review) return; // a shared session shows the shared image only
  const id = nextId++;
  opening.set(id, file);
  if (restore) restoring = { id, wanted: restore };
  else restartsOnFile = 0;
  setStatus(`Opening ${file.name}…`);
  // The File itself, not its bytes: the worker reads it, so the page never holds a copy.
  worker.postMessage({ type: 'open', id, name: file.name, file });
}

function requestRender() {
  dirty = true;
  pump();
}

function pump() {
  if (inFlight || !dirty || !current) return;
  dirty = false;
  inFlight = true;
  worker.postMessage({ type: 'render', id: current.id, ...wanted });
}

function onOpened(msg) {
  const { id, name, info, window: win, range } = msg;
  const restored = restoring?.id === id ? restoring.wanted : null;
  restoring = null;
  // Colour images have no window (null); the worker ignores the numbers sent for them.
  current = { id, name, info, range, defaultWindow: { center: 0, width: 0, ...win }, file: opening.get(id) };
  for (const earlier of opening.keys()) if (earlier <= id) opening.delete(earlier);
  wanted = { frame: 0, ...current.defaultWindow };
  // The worker silently drops renders meant for the file this one replaced: none is in flight now.
  inFlight = false;
  clearError();
  setStatus(restored ? `The decoder stopped unexpectedly and was restarted; ${name} is open again as it was` : 'Ready');
  fillWindowControls();
  fillFrames(info.frames);
  fillMetadata(msg);
  $('file-name').textContent = name;
  if (restored) {
    // The same file after a restart: the frame, window, zoom and pan stay as the user left them.
    Object.assign(wanted, restored);
    if (info.grey) showWindow();
    frameInput.value = String(wanted.frame);
    showFrame();
    drawnId = id;
  }
  requestRender();
  if (review) return; // a shared session shows the clinician's diagnosis and makes none of its own
  sharePanel.opened(id);
  diagnosis.opened(id, info, { frame: wanted.frame, restored: Boolean(restored) });
}

function onRendered(msg) {
  inFlight = false;
  if (current && msg.id === current.id) {
    const first = drawnId !== msg.id;
    try {
      viewer.show(msg.rgba, msg.columns, msg.rows, first);
      // Drawn (copied into the canvas): the buffer goes back for the next frame rather than to the
      // garbage collector.
      worker.postMessage({ type: 'recycle', buffer: msg.rgba }, [msg.rgba]);
    } catch (err) {
      onError({ id: msg.id, message: err.message });
      return;
    }
    // Test hooks: what is on screen now, which may lag what the controls ask for.
    canvas.dataset.frame = msg.frame;
    if (current.info.grey) {
      canvas.dataset.windowCenter = msg.center;
      canvas.dataset.windowWidth = msg.width;
    } else {
      delete canvas.dataset.windowCenter;
      delete canvas.dataset.windowWidth;
    }
    if (first) {
      drawnId = msg.id;
      canvas.dataset.file = current.name;
      canvas.setAttribute('aria-label', `${current.info.modality ?? 'Image'}: ${current.name}`);
      $('hint').hidden = true;
      if (document.body.dataset.state !== 'error') setState('opened');
    }
    diagnosis.rendered(msg.id, msg.frame);
  }
  pump();
}

function onError(msg) {
  if (current && msg.id === current.id) {
    inFlight = false;
    showError(`Could not draw ${current.name}: ${msg.message}`);
  } else {
    showError(`Could not open ${msg.name}: ${msg.message}`);
    setStatus('Ready');
  }
  setState('error');
}

function startWorker() {
  const started = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  workerReady = false;
  started.onmessage = ({ data: msg }) => {
    if (['assessment', 'diagnosis-error', 'model-error', 'fatal', 'error'].includes(msg.type)) settleInstall();
    if (diagnosis.handle(msg) || shareBridge.handle(msg)) return;
    if (msg.type === 'ready') {
      workerReady = true;
      setTimeout(() => { if (!current && opening.size === 0) settleInstall(); }, 2000);
      if (!restoring) setStatus('Ready');
      if (document.body.dataset.state === 'loading') setState('ready');
    } else if (msg.type === 'fatal') {
      setStatus('Decoder failed to load');
      showError(msg.message);
      setState('error');
    } else if (msg.type === 'panic') restart(msg.message);
    else if (msg.type === 'opened') onOpened(msg);
    else if (msg.type === 'rendered') onRendered(msg);
    else if (msg.type === 'error') onError(msg);
  };
  started.onerror = (e) => {
    // A worker that had started and then died is restarted; one that never started is not.
    if (workerReady) {
      restart(e.message || 'the worker stopped');
      return;
    }
    setStatus('Decoder failed to load');
    showError(`The decoder stopped: ${e.message || 'the worker could not start'}`);
    setState('error');
  };
  return started;
}

/**
 * The worker's Wasm module panicked (a bug; its state cannot be trusted) or the worker died: a fresh
 * worker takes over and opens the file on screen again, with the same frame, window and view, and the
 * diagnosis is asked for again. Twice on one file and it is left closed rather than crash again.
 */
function restart(why) {
  console.warn(`Bedside: restarting the decoder after: ${why}`);
  worker.terminate();
  worker = startWorker();
  inFlight = false;
  diagnosis.restarted(worker);
  shareBridge.restarted(worker);
  document.body.dataset.restarts = String(Number(document.body.dataset.restarts ?? 0) + 1); // test hook
  const file = restoring ? opening.get(restoring.id) : current?.file;
  restoring = null;
  opening.clear();
  if (file && restartsOnFile < 2) {
    restartsOnFile++;
    setStatus(`The decoder stopped unexpectedly and was restarted; opening ${file.name} again…`);
    openFile(file, { ...wanted });
  } else if (file) {
    showError(`The decoder stopped unexpectedly again on ${file.name} and was restarted without it (${why})`);
    setState('error');
  } else {
    setStatus('The decoder stopped unexpectedly and was restarted');
  }
}

// ---- window / level ----

function span() {
  return Math.max(current.range.high - current.range.low, 1e-6);
}

// Integer-valued data gets integer windows; small float ranges keep a few decimals.
function tidy(value) {
  return span() >= 100 ? Math.round(value) : Number(value.toPrecision(4));
}

function setWindow(center, width, { fromInput = false } = {}) {
  const s = span();
  const { low, high } = current.range;
  wanted.center = tidy(Math.min(Math.max(center, low - s), high + s));
  wanted.width = tidy(Math.min(Math.max(width, s / 1000), Math.max(2 * s, current.defaultWindow.width)));
  // Rewriting an input while someone types in it would move their cursor.
  if (!fromInput) showWindow();
  requestRender();
}

function showWindow() {
  wc.value = wanted.center;
  ww.value = wanted.width;
}

/** A drag across the whole canvas moves width (sideways) or center (up/down) by the full range. */
function windowDrag(dx, dy) {
  if (!current?.info.grey) return;
  const s = span();
  setWindow(wanted.center + dy * s, wanted.width + dx * s);
}

function fillWindowControls() {
  const grey = current.info.grey;
  const step = span() >= 100 ? '1' : 'any';
  for (const input of [wc, ww]) {
    input.disabled = !grey;
    input.step = step;
  }
  $('tool-window').disabled = !grey;
  if (grey) showWindow();
  else wc.value = ww.value = '';
  setTool(userTool);
}

function setTool(tool) {
  const effective = current && !current.info.grey ? 'pan' : tool;
  viewer.tool = effective;
  $('tool-window').setAttribute('aria-pressed', String(effective === 'window'));
  $('tool-pan').setAttribute('aria-pressed', String(effective === 'pan'));
  canvas.dataset.tool = effective;
}

for (const input of [wc, ww]) {
  input.addEventListener('input', () => {
    if (!current || !Number.isFinite(wc.valueAsNumber) || !Number.isFinite(ww.valueAsNumber)) return;
    setWindow(wc.valueAsNumber, ww.valueAsNumber, { fromInput: true });
  });
  input.addEventListener('change', () => current && showWindow()); // show what was clamped
}

// ---- frames ----

function fillFrames(frames) {
  $('frames').hidden = !(frames > 1);
  frameInput.max = String(Math.max(frames - 1, 0));
  frameInput.value = '0';
  showFrame();
}

function showFrame() {
  $('frame-out').textContent = `${Number(frameInput.value) + 1} / ${Number(frameInput.max) + 1}`;
}

function setFrame(frame) {
  if (!current) return;
  const last = Number(frameInput.max);
  wanted.frame = Math.min(Math.max(frame, 0), last);
  frameInput.value = String(wanted.frame);
  showFrame();
  requestRender();
}

frameInput.addEventListener('input', () => setFrame(Number(frameInput.value)));
$('frame-prev').addEventListener('click', () => setFrame(wanted.frame - 1));
$('frame-next').addEventListener('click', () => setFrame(wanted.frame + 1));

// ---- details panel ----

/** The decoder's own attribute list, plus the modality (photos lack it) and the range windows apply to. */
function fillMetadata({ info, attributes, range }) {
  const rows = [...attributes];
  if (!rows.some(([label]) => label === 'Modality')) rows.unshift(['Modality', info.modality]);
  if (info.grey) rows.push(['Value range', `${tidy(range.low)} to ${tidy(range.high)}`]);
  const items = [];
  for (const [label, value] of rows) {
    if (value == null || value === '') continue;
    const dt = document.createElement('dt');
    const dd = document.createElement('dd');
    dt.textContent = label; // textContent, never HTML: file contents are untrusted
    dd.textContent = String(value);
    items.push(dt, dd);
  }
  $('metadata').replaceChildren(...items);
}

// ---- opening files ----

$('file').addEventListener('change', (e) => {
  openFile(e.target.files[0]);
  e.target.value = ''; // so choosing the same file again still opens it
});

// Drops anywhere on the page count: a missed drop would otherwise navigate away from the viewer.
let dragDepth = 0;
const viewerBox = $('viewer');
document.addEventListener('dragenter', (e) => {
  e.preventDefault();
  if (++dragDepth === 1) viewerBox.classList.add('drop-target');
});
document.addEventListener('dragleave', () => {
  if (--dragDepth <= 0) {
    dragDepth = 0;
    viewerBox.classList.remove('drop-target');
  }
});
document.addEventListener('dragover', (e) => e.preventDefault());
document.addEventListener('drop', (e) => {
  e.preventDefault();
  dragDepth = 0;
  viewerBox.classList.remove('drop-target');
  openFile(e.dataTransfer?.files[0]);
});

// ---- buttons ----

$('tool-window').addEventListener('click', () => setTool((userTool = 'window')));
$('tool-pan').addEventListener('click', () => setTool((userTool = 'pan')));
$('zoom-in').addEventListener('click', () => viewer.zoomBy(1.25));
$('zoom-out').addEventListener('click', () => viewer.zoomBy(0.8));
$('reset').addEventListener('click', () => {
  if (!current) return;
  viewer.fit();
  if (!current.info.grey) return;
  // The file's own values exactly, not clamped or rounded like a drag.
  Object.assign(wanted, current.defaultWindow);
  showWindow();
  requestRender();
});
$('error-close').addEventListener('click', clearError);
