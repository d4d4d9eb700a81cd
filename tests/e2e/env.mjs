// Where the end-to-end tests find things: the served app, the DICOM corpus, the shared photos and
// the browser. Everything comes from the environment so CI and a developer run the same tests.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const artifactsDir = path.join(repoRoot, 'tests/e2e/artifacts');

if (!process.env.BEDSIDE_URL) {
  throw new Error('BEDSIDE_URL is required: the base URL of the served app, e.g. http://127.0.0.1:8099 '
    + 'while `cargo xtask serve --port 8099` runs');
}
/** Base URL of the served repo root. */
export const baseUrl = process.env.BEDSIDE_URL;

const corpusDir = path.resolve(process.env.BEDSIDE_CORPUS ?? path.join(repoRoot, 'target/corpus'));
const dataDir = path.resolve(process.env.BEDSIDE_DATA ?? path.join(repoRoot, '../shared/data'));
let corpusFiles = null; // basename -> path, listed once

/** A corpus file by basename, wherever it lies under BEDSIDE_CORPUS (the unpacked packages nest). */
export function corpusFile(name) {
  if (!corpusFiles) {
    assert.ok(existsSync(corpusDir), `no corpus at ${corpusDir}: run \`cargo xtask corpus\` or set BEDSIDE_CORPUS`);
    corpusFiles = new Map();
    for (const rel of readdirSync(corpusDir, { recursive: true })) {
      const base = path.basename(rel);
      if (!corpusFiles.has(base)) corpusFiles.set(base, path.join(corpusDir, rel));
    }
  }
  const found = corpusFiles.get(name);
  assert.ok(found, `${name} is not under ${corpusDir}`);
  return found;
}

/**
 * A folder of the shared data (e.g. 'originals'), or null after skipping the test when it is absent.
 * With BEDSIDE_REQUIRE_DATA=1 an absent folder fails the test instead, so CI cannot pass by skipping.
 */
export function sharedData(t, folder) {
  const dir = path.join(dataDir, folder);
  if (existsSync(dir)) return dir;
  const reason = `shared data folder ${dir} is missing (set BEDSIDE_DATA)`;
  assert.notEqual(process.env.BEDSIDE_REQUIRE_DATA, '1', reason);
  console.log(`skipped "${t.name}": ${reason}`);
  t.skip(reason);
  return null;
}

/**
 * Debian's Chromium, headless: playwright-core cannot download its own browsers here. With
 * `webgpu`, Chromium offers WebGPU through its SwiftShader adapter (a CPU emulation: slow, but the
 * same shaders a GPU runs); without it, no adapter is offered.
 */
export function launchBrowser({ webgpu = false } = {}) {
  return chromium.launch(browserOptions({ webgpu }));
}

/** The launch options of `launchBrowser` (also for a persistent context, which is not incognito). */
export function browserOptions({ webgpu = false } = {}) {
  return {
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu-sandbox', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
      ...(webgpu ? ['--enable-unsafe-webgpu'] : [])],
  };
}

/**
 * A fresh page of the app in `browser`, with the decoder ready (tablet-like: touch, no DPR scaling);
 * fails the test if the page throws or logs an error (but for console errors `expectedErrors`, a
 * RegExp, matches). `prepare(context)` runs before the page loads (to route requests).
 */
export async function openApp(browser, t, viewport = { width: 1024, height: 768 }, prepare = null, expectedErrors = null) {
  // No service worker: these tests exercise the page and route requests, which a worker answering
  // from its cache would bypass; tests/e2e/offline.test.mjs tests the worker.
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1, hasTouch: true, serviceWorkers: 'block' });
  if (prepare) await prepare(context);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !expectedErrors?.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  t.after(async () => {
    await context.close();
    assert.deepEqual(problems, [], 'the page reported errors');
  });
  // Requests not answered yet: named when the page does not load, to tell a slow server from a stuck one.
  const pending = new Set();
  context.on('request', (request) => pending.add(request));
  for (const done of ['requestfinished', 'requestfailed']) context.on(done, (request) => pending.delete(request));
  try {
    await page.goto(new URL('/index.html', baseUrl).href);
  } catch (err) {
    err.message += `\nunanswered: ${[...pending].map((r) => r.url()).join(', ') || 'none'}`;
    throw err;
  }
  await page.waitForFunction(() => document.body.dataset.state === 'ready');
  return page;
}

// ---- diagnosis, as a clinician gets it ----

/** How many diagnoses the panel has shown so far. */
export function shownCount(page) {
  return page.evaluate(() => Number(document.getElementById('diagnosis').dataset.count ?? 0));
}

/** Opens a file, picks `task` (null: the file routes itself) and waits for its diagnosis. */
export async function diagnose(page, file, task, expected = task ?? 'chest') {
  const before = await shownCount(page);
  await page.setInputFiles('input[type=file]', file);
  await page.waitForFunction((name) => document.getElementById('view').dataset.file === name, path.basename(file));
  if (task) await page.selectOption('#task', task);
  return waitForDiagnosis(page, before, expected);
}

/** Waits for a diagnosis by `task` after the `before`-th (an error fails the test) and reads it. */
export async function waitForDiagnosis(page, before, task) {
  const outcome = await page.waitForFunction(([n, wanted]) => {
    const panel = document.getElementById('diagnosis');
    if (panel.dataset.state === 'error') return `error: ${document.getElementById('diagnosis-status').textContent}`;
    return Number(panel.dataset.count ?? 0) > n && panel.dataset.task === wanted && panel.dataset.state === 'done' && 'done';
  }, [before, task], { timeout: 120_000 });
  assert.equal(await outcome.jsonValue(), 'done');
  return page.evaluate(() => {
    const { task, label, mostLikely, probabilities, ms } = document.getElementById('diagnosis').dataset;
    return { task, label, mostLikely, probabilities: JSON.parse(probabilities), ms: Number(ms) };
  });
}

/** Share of the drawn image's pixels that are clearly coloured (a grey film tinted by the heat map). */
export function colourfulShare(page) {
  return page.evaluate(() => {
    const canvas = document.getElementById('view');
    const [x, y, w, h] = canvas.dataset.imageRect.split(' ').map(Number);
    const d = canvas.getContext('2d').getImageData(x, y, w, h).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 24) n++;
    return n / (d.length / 4);
  });
}
