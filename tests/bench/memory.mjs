// Peak-memory benchmark of the page, for `cargo xtask bench`: the app as `cargo xtask serve` builds
// it, in headless Chromium, on the CPU path (no WebGPU adapter is offered).
//
//   BEDSIDE_URL=http://127.0.0.1:PORT node tests/bench/memory.mjs --cr CR.dcm --frames FRAMES.dcm --photo OUT.jpg
//
// `--photo` names where to write the 9000 × 9000 JPEG photograph this script makes (Chromium's own
// encoder, in a page of its own). Each scenario runs in a fresh browser context: the page loads, the
// file is opened as a clinician opens it (the file input), and the diagnosis is awaited; the
// multi-frame file is then scrolled through frame by frame, each frame drawn before the next.
//
// Measured, on the page and on the worker that decodes and diagnoses:
// - the Wasm memory: its size at the end (a Wasm memory only grows, so this is its peak);
// - the JavaScript heap: V8's used heap plus ArrayBuffer backing stores (file bytes, pixels),
//   sampled every 20 ms over DevTools' protocol; the peak of page + worker.
// Prints one JSON line per scenario: scenario, wasm_bytes, js_peak_bytes, peak_bytes (their sum),
// outcome (the diagnosis panel's state, or the page's error when the file is refused), and
// frames_drawn for the multi-frame scenario.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
const opts = {};
for (let i = 0; i < args.length; i += 2) opts[args[i].replace(/^--/, '')] = args[i + 1];
if (!process.env.BEDSIDE_URL || !opts.cr || !opts.frames || !opts.photo) {
  console.error('usage: BEDSIDE_URL=http://127.0.0.1:PORT node tests/bench/memory.mjs --cr FILE --frames FILE --photo OUT.jpg');
  process.exit(2);
}
const base = process.env.BEDSIDE_URL;
const PHOTO_SIDE = 9000;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic'],
});
try {
  await makePhoto(opts.photo);
  report(await measure('cr', opts.cr));
  report(await measure('photo', opts.photo));
  report(await measure('frames', opts.frames, { scroll: true }));
} finally {
  await browser.close();
}

function report(line) {
  console.log(JSON.stringify(line));
}

/** A 9000 × 9000 JPEG: smooth shading with shapes on it (noise would make a file no camera makes). */
async function makePhoto(out) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const blank = new URL('/__bench__/blank.html', base).href;
  await page.route(blank, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>photo</title>' }));
  await page.goto(blank);
  const data = await page.evaluate(async (side) => {
    const canvas = new OffscreenCanvas(side, side);
    const g = canvas.getContext('2d');
    const shade = g.createLinearGradient(0, 0, side, side);
    shade.addColorStop(0, '#c89a7a');
    shade.addColorStop(1, '#6b3f2a');
    g.fillStyle = shade;
    g.fillRect(0, 0, side, side);
    for (let i = 0; i < 400; i++) {
      g.fillStyle = `hsl(${(i * 37) % 360} 40% ${30 + (i % 40)}%)`;
      g.beginPath();
      g.arc((i * 7919) % side, (i * 104729) % side, 20 + (i % 200), 0, 2 * Math.PI);
      g.fill();
    }
    const blob = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.9 });
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
  }, PHOTO_SIDE);
  writeFileSync(out, Buffer.from(data, 'base64'));
  await context.close();
}

/** DevTools' protocol on the worker target of this page, through the browser's session. */
async function workerSession(cdp) {
  let worker;
  for (let tries = 0; !worker && tries < 100; tries++) {
    const { targetInfos } = await cdp.send('Target.getTargets');
    worker = targetInfos.find((t) => t.type === 'worker' && t.url.endsWith('/worker.js'));
    if (!worker) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (!worker) throw new Error('the page started no worker');
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: worker.targetId, flatten: false });
  let next = 0;
  const waiting = new Map();
  cdp.on('Target.receivedMessageFromTarget', (event) => {
    if (event.sessionId !== sessionId) return;
    const message = JSON.parse(event.message);
    const answer = waiting.get(message.id);
    if (!answer) return;
    waiting.delete(message.id);
    if (message.error) answer.reject(new Error(`${message.error.message}`));
    else answer.resolve(message.result);
  });
  return (method, params = {}) => new Promise((resolve, reject) => {
    const id = ++next;
    waiting.set(id, { resolve, reject });
    cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) }).catch(reject);
  });
}

/** Bytes of every WebAssembly.Memory in the worker. */
async function wasmBytes(send) {
  const { result: proto } = await send('Runtime.evaluate', { expression: 'WebAssembly.Memory.prototype' });
  const { objects } = await send('Runtime.queryObjects', { prototypeObjectId: proto.objectId });
  const { result } = await send('Runtime.callFunctionOn', {
    objectId: objects.objectId,
    functionDeclaration: 'function () { return this.reduce((sum, m) => sum + m.buffer.byteLength, 0); }',
    returnByValue: true,
  });
  return result.value;
}

async function measure(scenario, file, { scroll = false } = {}) {
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 }, serviceWorkers: 'block' });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(new URL('/index.html', base).href);
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 120_000 });
  const pageCdp = await context.newCDPSession(page);
  const browserCdp = await browser.newBrowserCDPSession();
  const worker = await workerSession(browserCdp);
  const heap = (usage) => usage.usedSize + (usage.backingStorageSize ?? 0);
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const [p, w] = await Promise.all([pageCdp.send('Runtime.getHeapUsage'), worker('Runtime.getHeapUsage')]);
      peak = Math.max(peak, heap(p) + heap(w));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();

  await page.setInputFiles('input[type=file]', file);
  const opened = await page.waitForFunction((name) => {
    if (document.body.dataset.state === 'error') return `refused: ${document.getElementById('error').textContent.trim()}`;
    return document.getElementById('view').dataset.file === name && 'opened';
  }, path.basename(file), { timeout: 300_000 });
  let outcome = await opened.jsonValue();
  if (outcome !== 'opened') console.error(`${scenario}: ${outcome}`);
  let framesDrawn = 0;
  if (outcome === 'opened') {
    const done = await page.waitForFunction(() => {
      const state = document.getElementById('diagnosis').dataset.state;
      return ['done', 'refused', 'error'].includes(state) && state;
    }, null, { timeout: 300_000 });
    outcome = `diagnosis ${await done.jsonValue()}`;
    if (scroll) {
      const frames = Number(await page.getAttribute('#frame', 'max')) + 1;
      for (let frame = 1; frame < frames; frame++) {
        await page.click('#frame-next');
        await page.waitForFunction((f) => document.getElementById('view').dataset.frame === String(f), frame);
      }
      framesDrawn = frames;
    }
  }
  sampling = false;
  await sampler;
  const wasm = await wasmBytes(worker);
  await browserCdp.detach();
  await context.close();
  if (errors.length) outcome += `; the page threw: ${errors.join('; ')}`;
  return {
    scenario,
    file: path.basename(file),
    wasm_bytes: wasm,
    js_peak_bytes: peak,
    peak_bytes: wasm + peak,
    outcome,
    ...(scroll ? { frames_drawn: framesDrawn } : {}),
  };
}
