// First-visit benchmark of the page, for `cargo xtask bench load`: a tablet that has never opened
// Bedside, on a slow link, opens the page and a chest film, and waits for the diagnosis.
//
//   BEDSIDE_URL=http://127.0.0.1:PORT node tests/bench/load.mjs --film FILM.dcm [--runs N]
//
// The link: every request of the browser (the page's, its worker's and the service worker's) goes
// through a proxy here that holds the response back 40 ms (the round trip) and then lets all
// responses share 10 Mbit/s, as one slow connection does. Chromium's own network emulation would
// slow the page's requests only, not those of its workers, which fetch the wasm and the models.
//
// Each run is a fresh browser context (empty HTTP cache, no service worker); the page loads, the
// film is opened as a clinician opens it (the file input, as soon as the page is ready for a file),
// and the diagnosis is awaited. Measured per run: the time from navigation to the diagnosis panel's
// answer (the page's own clock, whose origin is the navigation), and the bytes the proxy sent before
// then — all of them, and those of the app's code (wasm, JavaScript, CSS) — as they travel: gzip
// where the server sends gzip, headers included. Prints one JSON line: runs, each run's figures, and
// the medians (cold_start_ms, app_code_bytes, bytes_before_diagnosis).
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
const opts = { runs: '3' };
for (let i = 0; i < args.length; i += 2) opts[args[i].replace(/^--/, '')] = args[i + 1];
const runs = Number(opts.runs);
if (!process.env.BEDSIDE_URL || !opts.film || !(runs >= 1)) {
  console.error('usage: BEDSIDE_URL=http://127.0.0.1:PORT node tests/bench/load.mjs --film FILE [--runs N]');
  process.exit(2);
}
const upstream = new URL(process.env.BEDSIDE_URL);
const LATENCY_MS = 40;
const BITS_PER_SECOND = 10e6;

/** Every response the proxy finished: path, kind of content, bytes on the wire, when. */
let sent = [];
// When the shared link is next free (ms, performance.now()).
let linkFree = 0;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Writes `chunk` once the link has carried everything queued before it. */
async function throttled(out, chunk) {
  const start = Math.max(performance.now(), linkFree);
  linkFree = start + (chunk.length * 8 * 1000) / BITS_PER_SECOND;
  await sleep(linkFree - performance.now());
  if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve));
}

const proxy = http.createServer(async (request, response) => {
  await sleep(LATENCY_MS);
  const forwarded = http.request({
    host: upstream.hostname,
    port: upstream.port,
    method: request.method,
    path: request.url,
    headers: { ...request.headers, host: upstream.host },
  }, async (reply) => {
    const head = Object.entries(reply.headers).reduce((n, [k, v]) => n + k.length + String(v).length + 4, 16);
    response.writeHead(reply.statusCode, reply.headers);
    let bytes = head;
    for await (const chunk of reply) {
      // In pieces of 16 KB, so that concurrent responses interleave on the link.
      for (let at = 0; at < chunk.length; at += 16384) {
        const piece = chunk.subarray(at, at + 16384);
        await throttled(response, piece);
        bytes += piece.length;
      }
    }
    response.end();
    const kind = String(reply.headers['content-type'] ?? '').split(';')[0];
    sent.push({ path: request.url, kind, bytes, at: performance.now() });
  });
  forwarded.on('error', () => response.destroy());
  request.pipe(forwarded);
});
await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${proxy.address().port}`;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic'],
});
const results = [];
try {
  for (let run = 0; run < runs; run++) results.push(await visit());
} finally {
  await browser.close();
  proxy.close();
}
const median = (values) => {
  const v = [...values].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
console.log(JSON.stringify({
  runs,
  latency_ms: LATENCY_MS,
  bits_per_second: BITS_PER_SECOND,
  film: path.basename(opts.film),
  results,
  cold_start_ms: median(results.map((r) => r.cold_start_ms)),
  app_code_bytes: median(results.map((r) => r.app_code_bytes)),
  bytes_before_diagnosis: median(results.map((r) => r.bytes_before_diagnosis)),
}));

async function visit() {
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  sent = [];
  linkFree = 0;
  const navigated = performance.now();
  await page.goto(new URL('/index.html', base).href, { waitUntil: 'commit' });
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 300_000, polling: 10 });
  await page.setInputFiles('input[type=file]', opts.film);
  const done = await page.waitForFunction(() => {
    const state = document.getElementById('diagnosis').dataset.state;
    return ['done', 'refused', 'error'].includes(state) && { state, at: performance.now() };
  }, null, { timeout: 300_000, polling: 10 });
  const { state, at } = await done.jsonValue();
  // The proxy's clock at the answer: the page's time from navigation, on the proxy's time line.
  const answered = navigated + at;
  await context.close();
  if (state !== 'done' || errors.length) {
    throw new Error(`the film was not diagnosed (${state}); the page threw: ${errors.join('; ') || 'nothing'}`);
  }
  const before = sent.filter((s) => s.at <= answered);
  const code = ['application/wasm', 'text/javascript', 'text/css'];
  return {
    cold_start_ms: Math.round(at),
    app_code_bytes: before.filter((s) => code.includes(s.kind)).reduce((n, s) => n + s.bytes, 0),
    bytes_before_diagnosis: before.reduce((n, s) => n + s.bytes, 0),
    requests_before_diagnosis: before.length,
  };
}
