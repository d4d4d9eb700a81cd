// Accessibility of the page as a clinician leaves it after a diagnosis, checked by axe-core against
// WCAG 2.0, 2.1 and 2.2 at levels A and AA and axe's best practices, on a tablet held either way.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { diagnose, launchBrowser, openApp, sharedData } from './env.mjs';

const CHEST = 'chest_person321_virus_648.jpeg';
const RULES = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'];
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(() => browser?.close());

for (const [width, height] of [[768, 1024], [1024, 768]]) {
  test(`at ${width}×${height}, after a diagnosis and with Settings open, axe finds no violation`, async (t) => {
    const originals = sharedData(t, 'originals');
    if (!originals) return;
    const page = await openApp(browser, t, { width, height });
    await diagnose(page, path.join(originals, CHEST), null, 'chest');
    await page.click('#settings summary');
    // Injected through the DevTools protocol: the page's CSP rightly refuses inline scripts.
    await page.evaluate(axeSource);
    const { violations, passes } = await page.evaluate((tags) => window.axe.run(document, {
      runOnly: { type: 'tag', values: tags },
    }), RULES);
    assert.ok(passes.length > 20, `axe ran its rules (${passes.length} passed)`);
    const found = violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    assert.deepEqual(found, []);
  });
}
