// The worker: the only place the Wasm modules run (decoding and diagnosis), so the page never
// freezes. One message bridge (see web/bridge.md for the protocol).
import init, * as cpuBuild from '../pkg/bedside_web.js';

const { Draft, Study, fasterBackend, openReply, openShare, sealReply } = cpuBuild;

let study = null; // the last file that opened; a failed open leaves it in place
let studyId = 0;
let studyName = '';
let studyBytes = null; // the current file as it came, for a share's de-identified copy
/**
 * The WebGPU build of the module (`pkg/webgpu/`: the same exports plus burn-wgpu, most of the bytes),
 * imported and started the first time a model is to run on WebGPU; a failed import is forgotten,
 * so the next try fetches again.
 */
let gpuBuild = null;
/** The current file opened again in the WebGPU build, `{id, study}`: a Study belongs to its build. */
let gpuStudy = null;
/** The current file's last diagnosis, as the page got it: what a share carries. */
let lastDiagnosis = null;
/** {id, draft}: the current file de-identified for a share the clinician has not confirmed yet. */
let shareDraft = null;
/** `task/backend` → Promise<{model, summary, …}>: each model is fetched and warmed up once. */
const models = new Map();
/** Loads run one after another: the WebGPU device is made once, by the first of them. */
let loads = Promise.resolve();
/**
 * Task → {backend, cpu_ms, webgpu_ms}: the backend Automatic uses for that model on this device,
 * from a timed run of both (`timeBackends`) or remembered by the page from an earlier visit.
 */
const choices = new Map();
/** Tasks whose backends are being timed now. */
const timing = new Set();

/**
 * The gate's files, fetched while the module downloads and compiles: every file the page opens goes
 * through the gate first, and on a slow link its weights would otherwise start only after the
 * module is running and a file is open. Each is used once (`fetchOk`, `fetchOptional`); a later
 * load fetches again.
 */
const prefetched = new Map(['models/gate/model.json', 'models/gate/model.bin', 'models/gate/lesion.json'].map((url) => {
  const response = fetchFromApp(url);
  response.catch(() => {}); // a failure surfaces where the load awaits it
  return [url, response];
}));

/** A response for `url`, the prefetched one the first time there is one. */
function fetchOnce(url) {
  const response = prefetched.get(url);
  prefetched.delete(url);
  return response ?? fetchFromApp(url);
}

/** The app's file at `url`, a path from the app's root (the folder above this worker's). */
function fetchFromApp(url) {
  return fetch(new URL(`../${url}`, import.meta.url));
}

const ready = init().then(
  () => self.postMessage({ type: 'ready' }),
  (err) => self.postMessage({ type: 'fatal', message: `could not start the decoder: ${err}` }),
);

let panicked = false; // reported to the page once; this worker then answers nothing more

/**
 * Whether the Wasm module has panicked (here or in an earlier request). Its state cannot be trusted
 * after a panic, so the page is told once (`panic`) and starts a fresh worker.
 */
function panicReported() {
  if (panicked) return true;
  let message;
  try {
    message = cpuBuild.lastPanic() ?? loadedGpuBuild?.lastPanic();
  } catch (err) {
    message = `the decoder is in a broken state (${err.message ?? err})`;
  }
  if (message == null) return false;
  panicked = true;
  self.postMessage({ type: 'panic', message });
  return true;
}

/** Rendered frames' buffers the page has drawn and handed back, reused for the next render. */
const spare = [];
const SPARE_KEPT = 2;

/** The id of the newest `open` or `share-open`: a file still being read when a newer one came is dropped. */
let newestOpen = 0;

/** A File the page handed over, as bytes; a failed read is an `error` for that file. */
async function readFile(file) {
  try {
    return new Uint8Array(await file.arrayBuffer());
  } catch (err) {
    throw new Error(`could not read the file (${err.message ?? err})`);
  }
}

self.onmessage = async ({ data: msg }) => {
  await ready;
  if (panicReported()) return;
  try {
    if (msg.type === 'open') {
      newestOpen = Math.max(newestOpen, msg.id);
      const bytes = msg.file ? await readFile(msg.file) : new Uint8Array(msg.bytes);
      if (msg.id < newestOpen) return; // a newer file came while this one was read: that one stays
      replaceStudy(Study.open(bytes, msg.name), msg.id, bytes, msg.name);
      self.postMessage({ type: 'opened', id: msg.id, name: msg.name, ...study.summary() });
    } else if (msg.type === 'render') {
      if (!study || msg.id !== studyId) return; // a render for a file that was replaced
      const size = 4 * study.columns * study.rows;
      const reused = spare.findIndex((buffer) => buffer.byteLength === size);
      let rgba;
      if (reused >= 0) {
        rgba = new Uint8Array(spare.splice(reused, 1)[0]);
        study.render_into(msg.frame, msg.center, msg.width, rgba);
      } else {
        rgba = study.render(msg.frame, msg.center, msg.width);
      }
      self.postMessage(
        {
          type: 'rendered', id: msg.id, frame: msg.frame, center: msg.center, width: msg.width,
          columns: study.columns, rows: study.rows, rgba: rgba.buffer,
        },
        [rgba.buffer],
      );
    } else if (msg.type === 'recycle') {
      // Only the current file's frame size: another file's buffers would be held for nothing.
      const size = study ? 4 * study.columns * study.rows : -1;
      if (spare.length < SPARE_KEPT && msg.buffer.byteLength === size) spare.push(msg.buffer);
    } else if (msg.type === 'backend-choices') {
      for (const [task, choice] of Object.entries(msg.choices ?? {})) choices.set(task, choice);
    } else if (msg.type === 'load-model') {
      await model(msg.task, msg.backend).catch(() => {}); // model-error already told the page
    } else if (msg.type === 'diagnose') {
      await diagnose(msg);
    } else if (msg.type.startsWith('share-') || msg.type.startsWith('reply-')) {
      shareMessage(msg);
    }
  } catch (err) {
    if (panicReported()) return;
    self.postMessage({ type: 'error', id: msg.id, name: msg.name, message: String(err.message ?? err) });
  }
};

function replaceStudy(opened, id, bytes, name) {
  if (study) study.free();
  gpuStudy?.study.free();
  gpuStudy = null;
  study = opened;
  studyId = id;
  studyName = name;
  studyBytes = bytes;
  spare.length = 0;
  lastDiagnosis = null;
  shareDraft?.draft.free();
  shareDraft = null;
}

/**
 * Sharing for review (web/bridge.md, "Sharing"): each answer echoes the request's `request` number,
 * and a failure is a `share-error` with one readable line, never an `error` about the file on screen.
 */
function shareMessage(msg) {
  const { request } = msg;
  try {
    if (msg.type === 'share-prepare') {
      if (!study || msg.id !== studyId) throw new Error('the image was replaced meanwhile; share it again');
      if (shareDraft?.id !== msg.id) {
        shareDraft?.draft.free();
        shareDraft = { id: msg.id, draft: Draft.new(studyBytes) };
      }
      const { draft } = shareDraft;
      self.postMessage({ type: 'share-prepared', request, id: msg.id, burnedInRisk: draft.burnedInRisk, burnedInWarning: draft.burnedInWarning });
    } else if (msg.type === 'share-seal') {
      const d = lastDiagnosis;
      if (shareDraft?.id !== msg.id || d?.id !== msg.id) throw new Error('there is no diagnosis of this image to share yet');
      const sealed = shareDraft.draft.seal(
        JSON.stringify(d.assessment), JSON.stringify(d.summary), d.heatMap.rgba, d.heatMap.width, d.heatMap.height,
        d.columns, d.rows, msg.note, msg.created, Float64Array.from((msg.blackOut ?? []).flat()),
      );
      const ciphertext = sealed.ciphertext;
      const flat = [...sealed.blackedOut];
      const blackedOut = Array.from({ length: flat.length / 4 }, (_, i) => flat.slice(4 * i, 4 * i + 4));
      const reply = {
        type: 'share-sealed', request, id: msg.id, ciphertext: ciphertext.buffer, fragment: sealed.fragment,
        capability: sealed.capability, blackedOut,
      };
      sealed.free();
      self.postMessage(reply, [ciphertext.buffer]);
    } else if (msg.type === 'share-open') {
      newestOpen = Math.max(newestOpen, msg.id);
      const shared = openShare(msg.fragment, new Uint8Array(msg.ciphertext));
      const image = shared.images[0];
      if (!image) throw new Error('this share holds no image');
      const opened = Study.open(image.bytes, image.name);
      replaceStudy(opened, msg.id, image.bytes, image.name);
      self.postMessage({ type: 'opened', id: msg.id, name: image.name, ...study.summary() });
      const transfer = [];
      const diagnoses = shared.diagnoses.map((d) => {
        if (!d.heat_map) return d;
        transfer.push(d.heat_map.rgba.buffer);
        return { ...d, heat_map: { ...d.heat_map, rgba: d.heat_map.rgba.buffer } };
      });
      self.postMessage(
        { type: 'share-opened', request, id: msg.id, created: shared.created, note: shared.note, diagnoses, columns: study.columns, rows: study.rows },
        transfer,
      );
    } else if (msg.type === 'reply-seal') {
      const sealed = sealReply(msg.fragment, msg.text, msg.opinion, msg.created);
      self.postMessage({ type: 'reply-sealed', request, ciphertext: sealed.buffer }, [sealed.buffer]);
    } else if (msg.type === 'reply-open') {
      // One unreadable reply (someone else's bytes) does not hide the others.
      const replies = msg.replies.map((bytes) => {
        try {
          return openReply(msg.fragment, new Uint8Array(bytes));
        } catch (err) {
          return { error: String(err.message ?? err) };
        }
      });
      self.postMessage({ type: 'replies-opened', request, replies });
    }
  } catch (err) {
    if (panicReported()) return;
    self.postMessage({ type: 'share-error', request, message: String(err.message ?? err) });
  }
}

/** The task's model on the wanted backend ('auto', 'webgpu' or 'cpu'), loading it the first time. */
function model(task, backend = 'auto') {
  const key = `${task}/${backend}`;
  if (!models.has(key)) {
    const loading = loads.then(() => load(task, backend));
    loads = loading.catch(() => {});
    // A failed load is forgotten, so asking again retries (the network may be back).
    loading.catch(() => models.delete(key));
    models.set(key, loading);
  }
  return models.get(key);
}

/** `quiet`: tell the page nothing (a load for timing, `timeBackends`, not one it waits for). */
async function load(task, backend, quiet = false) {
  const tell = (msg) => quiet || self.postMessage(msg);
  const progress = (loaded, total) => tell({ type: 'model-progress', task, loaded, total });
  try {
    const started = performance.now();
    // Asked for at once: on a slow link each request waited for the one before costs a round trip.
    // The lesion decoder's, where the task has one (a 404 means it has none).
    const asked = [fetchOk(`models/${task}/model.json`), fetchOk(`models/${task}/model.bin`), fetchOptional(`models/${task}/lesion.json`)];
    asked.forEach((response) => response.catch(() => {})); // a failure surfaces where it is awaited
    const json = await (await asked[0]).text();
    const weights = await readWithProgress(await asked[1], progress);
    const lesionJson = await asked[2];
    const lesion = lesionJson ? [await lesionJson.text(), await readWithProgress(await fetchOk(`models/${task}/lesion.bin`), () => {})] : [undefined, undefined];
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', weights));
    const sha256 = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
    let fallback = null; // why 'auto' did not get WebGPU
    let loaded;
    // Automatic starts on the CPU path (ready in milliseconds, where WebGPU compiles its shaders
    // first) unless a timed run on this device chose WebGPU (`timeBackends`).
    const chosen = backend === 'auto' ? choices.get(task)?.backend : undefined;
    let build = cpuBuild;
    if (backend === 'webgpu' || chosen === 'webgpu') {
      const why = await webgpuUnavailable();
      if (!why) {
        try {
          const gpu = await webgpuBuild();
          loaded = await gpu.Model.load(json, weights, 'webgpu', ...lesion);
          build = gpu;
        } catch (err) {
          if (backend === 'webgpu') throw err;
          fallback = String(err.message ?? err);
        }
      } else if (backend === 'webgpu') {
        throw new Error(why);
      } else {
        fallback = why;
      }
    } else if (backend === 'auto' && !chosen) {
      fallback = await webgpuUnavailable();
    }
    loaded ??= await cpuBuild.Model.load(json, weights, 'cpu', ...lesion);
    const fetchedMs = performance.now() - started;
    const warmStart = performance.now();
    await loaded.warmUp();
    const entry = {
      model: loaded,
      build,
      summary: { ...loaded.summary(), sha256, backend: loaded.backend, fallback },
      loadMs: fetchedMs,
      warmUpMs: performance.now() - warmStart,
    };
    tell({ type: 'model-ready', task, summary: entry.summary, loadMs: entry.loadMs, warmUpMs: entry.warmUpMs });
    return entry;
  } catch (err) {
    if (!panicReported()) {
      tell({ type: 'model-error', task, message: `could not load the ${task} model: ${err.message ?? err}` });
    }
    throw err;
  }
}

/** The WebGPU build once it has started, for `panicReported`. */
let loadedGpuBuild = null;

/** The WebGPU build of the module (see `gpuBuild`), started. */
function webgpuBuild() {
  gpuBuild ??= (async () => {
    const build = await import('../pkg/webgpu/bedside_web.js');
    await build.default();
    loadedGpuBuild = build;
    return build;
  })().catch((err) => {
    gpuBuild = null;
    throw new Error(`could not load the WebGPU part of the app (${err.message ?? err})`);
  });
  return gpuBuild;
}

/** The current file as a Study of `build`: opened again (once per file) in the WebGPU build. */
function studyIn(build) {
  if (build === cpuBuild) return study;
  if (gpuStudy?.id !== studyId) {
    gpuStudy?.study.free();
    gpuStudy = { id: studyId, study: build.Study.open(studyBytes, studyName) };
  }
  return gpuStudy.study;
}

/** The answer of the one adapter request this worker makes (see `webgpuUnavailable`). */
let adapterCheck = null;

/**
 * Why WebGPU cannot be used here, or null when the browser offers an adapter. Asked once per worker:
 * Automatic asks after every diagnosis until each model has a timed choice, and where there is no
 * adapter that would be one more request each time.
 */
function webgpuUnavailable() {
  adapterCheck ??= (async () => {
    if (!self.navigator.gpu) return 'this browser has no WebGPU';
    try {
      return (await self.navigator.gpu.requestAdapter()) ? null : 'the browser offers no WebGPU adapter';
    } catch (err) {
      return `WebGPU adapter request failed (${err.message ?? err})`;
    }
  })();
  return adapterCheck;
}

/**
 * The trust gate first: its Routing is a refusal, or names the model that answers under the routing
 * rule (the asked-for task, else for 'auto' the file's Modality's, else the one the gate sees). Either
 * way the page gets one `assessment`, the object `bedside predict` prints for the file.
 */
async function diagnose({ id, task: requested, frame, backend }) {
  if (!study || id !== studyId) return; // the file was replaced meanwhile: the page asks again
  const started = performance.now();
  const failed = (err) => {
    if (!panicReported()) {
      self.postMessage({ type: 'diagnosis-error', id, task: requested, frame, message: String(err.message ?? err) });
    }
  };
  let gate;
  try {
    gate = await model('gate', backend);
  } catch {
    return; // model-error already told the page
  }
  if (id !== studyId) return;
  let routing;
  try {
    routing = await gate.model.route(studyIn(gate.build), frame, requested);
  } catch (err) {
    return failed(err);
  }
  try {
    const task = routing.task; // undefined when refused; the rule is the library's
    if (!task) {
      const ms = performance.now() - started;
      self.postMessage({ type: 'assessment', id, task: requested, frame, ms, assessment: routing.refusal(), heatMap: null, outline: null });
      if (backend === 'auto') timeBackends(['gate']);
      return;
    }
    let entry;
    try {
      entry = await model(task, backend);
    } catch {
      return;
    }
    if (id !== studyId) return;
    let result;
    try {
      // A routing belongs to the gate's build; the answering model may run in the other one.
      if (entry.build !== gate.build) {
        const carried = entry.build.Routing.fromJson(routing.toJson());
        routing.free();
        routing = carried;
      }
      result = await entry.model.assess(studyIn(entry.build), frame, routing);
    } catch (err) {
      return failed(err);
    }
    const ms = performance.now() - started;
    const { assessment, heat_map: map, outline } = result;
    // A copy stays here: a share carries the diagnosis on screen, after the page got these pixels.
    lastDiagnosis = {
      id, assessment, summary: entry.summary, columns: study.columns, rows: study.rows,
      heatMap: { width: map.width, height: map.height, rgba: map.rgba.slice() },
    };
    const heatMap = { width: map.width, height: map.height, rgba: map.rgba.buffer };
    const outlineLayer = outline && { width: outline.width, height: outline.height, rgba: outline.rgba.buffer };
    const transfer = [heatMap.rgba];
    if (outlineLayer) transfer.push(outlineLayer.rgba);
    self.postMessage(
      {
        type: 'assessment', id, task: requested, frame, ms, backend: entry.summary.backend,
        fallback: entry.summary.fallback, assessment, heatMap, outline: outlineLayer ?? null,
      },
      transfer,
    );
    if (backend === 'auto') timeBackends(['gate', task]);
  } finally {
    routing.free();
  }
}

/**
 * Automatic's choice for each of `tasks` not chosen yet, where the browser offers WebGPU: after the
 * first diagnosis (so that it never holds one back), the model is loaded on WebGPU beside the CPU
 * path's, both are timed over three diagnosis passes, and the rule in Rust (`fasterBackend`) picks.
 * The page is told (`backend-choice`) and remembers it for later visits. Where WebGPU wins it answers
 * Automatic from then on (the CPU model stays, for the CPU setting); where it loses it is freed.
 */
async function timeBackends(tasks) {
  for (const task of tasks) {
    if (choices.has(task) || timing.has(task) || await webgpuUnavailable()) continue;
    timing.add(task);
    self.postMessage({ type: 'backend-timing', task });
    try {
      const automatic = model(task, 'auto');
      const cpu = await automatic;
      if (cpu.summary.backend !== 'cpu') continue;
      // A load of its own, in the line of loads, that no request shares until it has won.
      const loading = loads.then(() => load(task, 'webgpu', true));
      loads = loading.catch(() => {});
      const gpu = await loading;
      const pass = async (m) => {
        const start = performance.now();
        await m.warmUp();
        return performance.now() - start;
      };
      const cpuMs = [];
      const gpuMs = [];
      for (let i = 0; i < 3; i++) {
        cpuMs.push(await pass(cpu.model));
        gpuMs.push(await pass(gpu.model));
      }
      const median = (times) => times.sort((a, b) => a - b)[1];
      const choice = { backend: fasterBackend(median(cpuMs), median(gpuMs)), cpu_ms: median(cpuMs), webgpu_ms: median(gpuMs) };
      choices.set(task, choice);
      if (choice.backend === 'webgpu') {
        if (!models.has(`${task}/cpu`)) models.set(`${task}/cpu`, automatic);
        models.set(`${task}/auto`, Promise.resolve(gpu));
      } else {
        gpu.model.free();
      }
      self.postMessage({ type: 'backend-choice', task, choice, summary: (choice.backend === 'webgpu' ? gpu : cpu).summary });
    } catch (err) {
      // Automatic stays on the CPU path this visit; the next one times again.
      if (panicReported()) return;
      self.postMessage({ type: 'backend-choice', task, choice: null, message: String(err.message ?? err) });
    } finally {
      timing.delete(task);
    }
  }
}

async function fetchOk(url) {
  const response = await fetchOnce(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

/** The response, or null on a 404 (a file the app may or may not ship). */
async function fetchOptional(url) {
  const response = await fetchOnce(url);
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

/** The response's whole body as bytes, reporting progress as it arrives. */
async function readWithProgress(response, progress) {
  // Sent gzip-compressed, its Content-Length counts the compressed bytes, not those read here.
  const encoded = response.headers.get('content-encoding');
  const total = encoded ? 0 : Number(response.headers.get('content-length')) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  progress(0, total);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    progress(loaded, total);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}
