// Sharing for review, in two browsers: a clinician diagnoses a DICOM film that names its patient and
// shares it with a note; a reviewer opens the link in another context and sees the image, the result,
// the heat map and the note, and none of the patient's identity; the reviewer's reply reaches the
// clinician. A link with the wrong key says "cannot decrypt this share". Needs the relay serving the
// site and its API (BEDSIDE_RELAY_URL; `cargo xtask test` starts one; without it the tests skip).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { colourfulShare, diagnose, launchBrowser, sharedData } from './env.mjs';

const CHEST_DICOM = 'chest_person321_virus_648.dcm'; // cargo xtask test wraps the film (BEDSIDE_FIXTURES)
const PATIENT = ['DOE^JANE', 'MRN-0042', 'DOE', 'JANE']; // crates/xtask/src/fixtures.rs
const NOTE = 'Four-year-old, fever and cough for five days. Pneumonia?';
const relayUrl = process.env.BEDSIDE_RELAY_URL;
const RULES = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']; // as accessibility.test.mjs
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** axe-core's violations on the page as it is now (none expected). */
async function axeViolations(page) {
  await page.evaluate(axeSource);
  const { violations } = await page.evaluate((tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags } }), RULES);
  return violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(() => browser?.close());

/**
 * A page at `url` in a context of its own (another browser profile: nothing shared but the link),
 * failing the test on page errors and on console errors but those `expected` matches.
 */
async function openPage(t, url, expected = null) {
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 }, deviceScaleFactor: 1, hasTouch: true, serviceWorkers: 'block' });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !expected?.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  t.after(async () => {
    await context.close();
    assert.deepEqual(problems, [], 'the page reported errors');
  });
  await page.goto(url);
  return page;
}

/**
 * The clinician's tab: the wrapped film diagnosed and shared with `NOTE`; returns the page and link.
 * `prepare(page)` runs in the open share form before the link is created.
 */
async function shareFilm(t, { burn = false, prepare = null } = {}) {
  if (!relayUrl) {
    // `cargo xtask serve` has no API; `cargo xtask test` starts the relay.
    const reason = 'BEDSIDE_RELAY_URL is not set: these tests need the relay serving the site';
    assert.notEqual(process.env.BEDSIDE_REQUIRE_DATA, '1', reason);
    t.skip(reason);
    return null;
  }
  const originals = sharedData(t, 'originals');
  if (!originals) return null;
  const dicom = path.join(process.env.BEDSIDE_FIXTURES ?? '', CHEST_DICOM);
  assert.ok(existsSync(dicom), `${dicom} is missing: cargo xtask test writes it (BEDSIDE_FIXTURES)`);
  const page = await openPage(t, new URL('/index.html', relayUrl).href);
  await page.waitForFunction(() => document.body.dataset.state === 'ready');
  assert.equal(await page.isDisabled('#share-open'), true, 'nothing to share before a diagnosis');
  const shown = await diagnose(page, dicom, null, 'chest');
  const metadata = await page.textContent('#metadata');
  assert.ok(metadata.includes('DOE^JANE') || metadata.includes('DOE'), 'the clinician sees the patient\'s name');

  await page.click('#share-open');
  await page.waitForFunction(() => document.getElementById('share').dataset.burnedIn);
  // CR with no Burned In Annotation: the rule sees no burned-in text risk, so no warning.
  assert.equal(await page.getAttribute('#share', 'data-burned-in'), 'no');
  assert.equal(await page.isVisible('#share-warning'), false);
  await page.fill('#share-note', NOTE);
  await page.selectOption('#share-ttl', '86400');
  if (burn) await page.check('#share-burn');
  if (prepare) await prepare(page);
  await page.click('#share-create');
  await page.waitForFunction(() => document.getElementById('share-link').value !== '' || document.getElementById('share').dataset.state === 'error');
  assert.notEqual(await page.getAttribute('#share', 'data-state'), 'error', await page.textContent('#share-status'));
  const link = await page.inputValue('#share-link');
  const url = new URL(link);
  assert.equal(url.origin, new URL(relayUrl).origin);
  const fragment = new URLSearchParams(url.hash.slice(1));
  assert.match(fragment.get('share'), /\S/);
  assert.match(fragment.get('k'), /^[A-Za-z0-9_-]{43}$/, 'the secret is in the fragment only');
  assert.equal(url.search, '', 'no secret in the part a server sees');
  return { page, link, shown };
}

test('a shared film opens read only for the reviewer, without the patient\'s identity; the reply reaches the clinician', async (t) => {
  const shared = await shareFilm(t);
  if (!shared) return;
  const { page: clinician, link, shown } = shared;

  const reviewer = await openPage(t, link);
  await reviewer.waitForFunction(() => ['open', 'error'].includes(document.getElementById('review').dataset.state), null, { timeout: 60_000 });
  assert.equal(await reviewer.getAttribute('#review', 'data-state'), 'open', await reviewer.textContent('#review-status'));
  assert.equal(await reviewer.textContent('#review-title'), 'Shared session — read only');
  assert.equal(await reviewer.getAttribute('body', 'data-mode'), 'review');
  // The image, in the usual viewer.
  await reviewer.waitForFunction(() => document.getElementById('view').dataset.file === 'image-1.dcm');
  assert.equal(await reviewer.getAttribute('body', 'data-state'), 'opened');
  // The result as the clinician got it, with its heat map over the film.
  const panel = await reviewer.evaluate(() => ({ ...document.getElementById('diagnosis').dataset }));
  assert.equal(panel.label, shown.label);
  assert.equal(panel.mostLikely, shown.mostLikely);
  const probabilities = JSON.parse(panel.probabilities);
  assert.deepEqual(Object.keys(probabilities).sort(), Object.keys(shown.probabilities).sort());
  for (const [c, p] of Object.entries(shown.probabilities)) assert.ok(Math.abs(probabilities[c] - p) < 1e-6, `${c}: ${probabilities[c]} vs ${p}`);
  assert.equal(await reviewer.isVisible('#result-label'), true);
  assert.equal(await reviewer.getAttribute('#view', 'data-heat-map'), 'shown');
  await reviewer.waitForFunction(() => document.getElementById('view').dataset.imageRect);
  const tinted = await colourfulShare(reviewer);
  assert.ok(tinted > 0.01, `the heat map tints the film (${(100 * tinted).toFixed(1)} % of pixels coloured)`);
  assert.equal(await reviewer.textContent('#review-note'), NOTE);
  // Read only: nothing to open, diagnose or share.
  for (const hidden of ['label[for=file]', '#task', '#share-open']) assert.equal(await reviewer.isVisible(hidden), false, hidden);
  // De-identified: nothing of the patient reaches the reviewer.
  const details = await reviewer.textContent('#metadata');
  for (const identity of PATIENT) assert.ok(!details.includes(identity), `${identity} is shown to the reviewer: ${details}`);

  await reviewer.check('input[name=reply-opinion][value=agree]');
  await reviewer.fill('#reply-text', 'Agree: right lower lobe consolidation. Start antibiotics.');
  await reviewer.click('#reply-send');
  await reviewer.waitForFunction(() => ['sent', 'error'].includes(document.getElementById('review-form').dataset.state));
  assert.equal(await reviewer.textContent('#reply-status'), 'Reply sent to the clinician.');

  await clinician.click('#share-check');
  await clinician.waitForFunction(() => document.querySelectorAll('#share-replies li').length > 0, null, { timeout: 30_000 });
  const replies = await clinician.$$eval('#share-replies li', (items) => items.map((li) => [li.dataset.opinion, li.textContent]));
  assert.deepEqual(replies, [['agree', 'Agrees: Agree: right lower lobe consolidation. Start antibiotics.']]);
  // Both sides as accessible as the rest of the page.
  assert.deepEqual(await axeViolations(clinician), [], 'the clinician\'s page with a share and its replies');
  assert.deepEqual(await axeViolations(reviewer), [], 'the reviewer\'s read-only page after replying');
});

test('a link with the wrong key says "cannot decrypt this share"; an unknown share says not found', async (t) => {
  const shared = await shareFilm(t);
  if (!shared) return;
  const wrong = new URL(shared.link);
  const params = new URLSearchParams(wrong.hash.slice(1));
  params.set('k', 'A'.repeat(43)); // 32 zero bytes: a well-formed key, not this share's
  wrong.hash = params.toString();
  const reviewer = await openPage(t, wrong.href);
  await reviewer.waitForFunction(() => document.getElementById('review').dataset.state === 'error', null, { timeout: 60_000 });
  assert.match(await reviewer.textContent('#review-status'), /cannot decrypt this share/);
  assert.equal(await reviewer.isVisible('#review-status'), true, 'said plainly, never a blank page');

  const unknown = new URL(shared.link);
  unknown.hash = `share=${'0'.repeat(32)}&k=${'A'.repeat(43)}`;
  const other = await openPage(t, unknown.href, /404|Failed to load resource/);
  await other.waitForFunction(() => document.getElementById('review').dataset.state === 'error', null, { timeout: 60_000 });
  assert.match(await other.textContent('#review-status'), /not found/);
});

/** Opens `link` in a fresh context and waits for the review panel to settle; returns its state and text. */
async function review(t, link, expected = null) {
  const page = await openPage(t, link, expected);
  await page.waitForFunction(() => ['open', 'error'].includes(document.getElementById('review').dataset.state), null, { timeout: 60_000 });
  return [await page.getAttribute('#review', 'data-state'), await page.textContent('#review-status')];
}

test('a share for one viewing reads "this share has expired" the second time; a deleted share is not found', async (t) => {
  const once = await shareFilm(t, { burn: true });
  if (!once) return;
  assert.equal((await review(t, once.link))[0], 'open');
  const [state, text] = await review(t, once.link, /410|Failed to load resource/);
  assert.equal(state, 'error');
  assert.match(text, /this share has expired/);

  // The clinician's Delete share: the relay forgets it (the delete token stayed in that tab).
  const { page: clinician, link } = await shareFilm(t);
  await clinician.click('#share-delete');
  await clinician.waitForFunction(() => document.getElementById('share-result').hidden || document.getElementById('share').dataset.state === 'error');
  assert.equal(await clinician.textContent('#share-status'), 'Share deleted: the link no longer opens.');
  const [gone, why] = await review(t, link, /404|Failed to load resource/);
  assert.equal(gone, 'error');
  assert.match(why, /not found/);
});

/** Sets the window to 128/256 (8-bit values as stored) and waits for it to be drawn. */
async function identityWindow(page) {
  await page.fill('#wc', '128');
  await page.fill('#ww', '256');
  await page.waitForFunction(() => {
    const { windowCenter, windowWidth } = document.getElementById('view').dataset;
    return windowCenter === '128' && windowWidth === '256';
  });
}

/** The frame as drawn (before overlays), one value per pixel (red; the film is grey), base64. */
function shownGrey(page) {
  return page.evaluate(() => {
    const image = document.getElementById('view').shownPixels;
    const d = image.getContext('2d').getImageData(0, 0, image.width, image.height).data;
    const grey = new Uint8Array(d.length / 4);
    for (let i = 0; i < grey.length; i++) grey[i] = d[4 * i];
    let text = '';
    for (let i = 0; i < grey.length; i += 0x8000) text += String.fromCharCode(...grey.subarray(i, i + 0x8000));
    return { columns: image.width, rows: image.height, grey: btoa(text) };
  });
}

test('rectangles drawn with a finger on the zoomed film and typed in pixels are black in the shared image; the rest is unchanged', async (t) => {
  let drag; // the drawn rectangle, in image pixels, as the view maps it
  let before; // the clinician's frame, as drawn
  const shared = await shareFilm(t, {
    prepare: async (page) => {
      await identityWindow(page);
      before = await shownGrey(page);
      const box = await page.locator('#view').boundingBox();
      const [ix, iy, iw] = (await page.getAttribute('#view', 'data-image-rect')).split(' ').map(Number);
      // Zoomed in by the button (about the canvas's centre): the drawing must follow the view.
      const fit = iw / before.columns;
      await page.click('#zoom-in');
      const scale = fit * 1.25;
      const [cx, cy] = [box.width / 2, box.height / 2];
      const [tx, ty] = [cx - (cx - ix) * 1.25, cy - (cy - iy) * 1.25];
      await page.click('#black-out-draw');
      assert.equal(await page.getAttribute('#black-out-draw', 'aria-pressed'), 'true');
      // Dragged up and to the left with a finger, around the canvas's centre.
      const from = [cx + 60, cy + 40];
      const to = [cx - 50, cy - 30];
      const finger = (k) => [{ x: box.x + from[0] + k * (to[0] - from[0]), y: box.y + from[1] + k * (to[1] - from[1]), id: 0 }];
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: finger(0) });
      for (let k = 1; k <= 8; k++) await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: finger(k / 8) });
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
      const image = ([x, y]) => [(x - tx) / scale, (y - ty) / scale];
      const [a, b] = [image(to), image(from)];
      drag = [a[0], a[1], b[0] - a[0], b[1] - a[1]];
      assert.equal(await page.getAttribute('#view', 'data-black-out'), '1', 'the drawn rectangle is shown');
      // The keyboard's way: one typed in pixels, running past the right edge (the worker clamps it).
      await page.click('.black-out-fields summary');
      await page.fill('#black-out-x', String(before.columns - 10));
      await page.fill('#black-out-y', '0');
      await page.fill('#black-out-width', '50');
      await page.fill('#black-out-height', '20');
      await page.press('#black-out-height', 'Enter');
      assert.equal(await page.textContent('#black-out-count'), '2 rectangles to black out');
      assert.equal(await page.textContent('#share-status'), '', 'Enter in a field adds a rectangle, it does not share');
      assert.deepEqual(await axeViolations(page), [], 'the share form with its black-out controls');
    },
  });
  if (!shared) return;
  const { page: clinician, link } = shared;
  const blackedOut = JSON.parse(await clinician.getAttribute('#share', 'data-blacked-out'));
  assert.equal(blackedOut.length, 2, JSON.stringify(blackedOut));
  const [drawn, typed] = blackedOut;
  // The drawn one covers every pixel the drag touched: its edges within a pixel or two of the drag's.
  const edges = ([x, y, w, h]) => [x, y, x + w, y + h];
  edges(drawn).forEach((v, i) => assert.ok(Math.abs(v - edges(drag)[i]) <= 2, `drawn ${drawn} vs dragged ${drag.map((n) => n.toFixed(1))}`));
  assert.deepEqual(typed, [before.columns - 10, 0, 10, 20], 'clamped to the image');
  assert.match(await clinician.textContent('#share-status'), /2 rectangles blacked out/);
  assert.equal(await clinician.getAttribute('#view', 'data-black-out'), '0', 'the drawing is cleared once shared');

  const reviewer = await openPage(t, link);
  await reviewer.waitForFunction(() => ['open', 'error'].includes(document.getElementById('review').dataset.state), null, { timeout: 60_000 });
  assert.equal(await reviewer.getAttribute('#review', 'data-state'), 'open', await reviewer.textContent('#review-status'));
  await reviewer.waitForFunction(() => document.getElementById('view').dataset.file === 'image-1.dcm');
  await identityWindow(reviewer);
  const after = await shownGrey(reviewer);
  assert.deepEqual([after.columns, after.rows], [before.columns, before.rows]);
  const [a, b] = [Buffer.from(before.grey, 'base64'), Buffer.from(after.grey, 'base64')];
  const inside = (i) => {
    const [x, y] = [i % before.columns, Math.floor(i / before.columns)];
    return blackedOut.some(([rx, ry, rw, rh]) => x >= rx && x < rx + rw && y >= ry && y < ry + rh);
  };
  let [black, wasDark, changed, covered] = [0, 0, 0, 0];
  for (let i = 0; i < a.length; i++) {
    if (inside(i)) {
      covered++;
      if (b[i] === 0) black++;
      if (a[i] === 0) wasDark++;
    } else if (a[i] !== b[i]) {
      changed++;
    }
  }
  const area = blackedOut.reduce((sum, [, , w, h]) => sum + w * h, 0);
  assert.ok(covered > 0 && covered <= area, `${covered} pixels covered`);
  assert.ok(wasDark < covered, 'the film was not already black there');
  assert.equal(black, covered, 'every pixel in the rectangles is black for the reviewer');
  assert.equal(changed, 0, 'no pixel outside the rectangles changed');
});
