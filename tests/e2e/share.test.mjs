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

/** The clinician's tab: the wrapped film diagnosed and shared with `NOTE`; returns the page and link. */
async function shareFilm(t, { burn = false } = {}) {
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
