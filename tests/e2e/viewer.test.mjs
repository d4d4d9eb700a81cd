// End-to-end tests of the viewer page in headless Chromium: open real files as a clinician would,
// then check what the canvas actually shows (pixels), not only what the page says.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { BACKGROUND } from '../../web/viewer.js';
import { artifactsDir, baseUrl, corpusFile, launchBrowser, openApp as openAppIn, sharedData } from './env.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(() => browser?.close());

/** A fresh page with the decoder ready; fails the test if the page throws or logs an error. */
const openApp = (t, viewport) => openAppIn(browser, t, viewport);

/** Opens a file through the file input and waits until its first frame is on the canvas. */
async function openFile(page, file) {
  await page.setInputFiles('input[type=file]', file);
  const outcome = await page.waitForFunction((name) => {
    const state = document.body.dataset.state;
    if (state === 'error') return `error: ${document.getElementById('error-text').textContent}`;
    return state === 'opened' && document.getElementById('view').dataset.file === name && 'opened';
  }, path.basename(file));
  assert.equal(await outcome.jsonValue(), 'opened');
}

/** Luminance and colour statistics of the canvas pixels where the image is drawn. */
function imageStats(page) {
  return page.evaluate(() => {
    const canvas = document.getElementById('view');
    const [x, y, w, h] = canvas.dataset.imageRect.split(' ').map(Number);
    const d = canvas.getContext('2d').getImageData(x, y, w, h).data;
    let sum = 0;
    let sum2 = 0;
    let colourful = 0;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4) {
      const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
      const lum = 0.299 * r + 0.587 * g + 0.114 * b;
      sum += lum;
      sum2 += lum * lum;
      if (Math.max(r, g, b) - Math.min(r, g, b) > 24) colourful++;
      colours.add((r << 16) | (g << 8) | b);
    }
    const n = d.length / 4;
    const mean = sum / n;
    return { w, h, mean, std: Math.sqrt(Math.max(sum2 / n - mean * mean, 0)), colourful: colourful / n, colours: colours.size };
  });
}

/** Canvas pixels that are the letterbox colour (a tinted colour no grey image can produce). */
function backgroundPixels(page) {
  return page.evaluate((bg) => {
    const canvas = document.getElementById('view');
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] === bg[0] && d[i + 1] === bg[1] && d[i + 2] === bg[2]) n++;
    return n;
  }, BACKGROUND);
}

/** The whole canvas, kept in the page for a later comparison. */
function snapshot(page) {
  return page.evaluateHandle(() => {
    const canvas = document.getElementById('view');
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    return { rect: canvas.dataset.imageRect, width: canvas.width, data };
  });
}

/** Mean absolute channel difference between the canvas now and a snapshot, over the image area. */
function meanAbsDiff(page, snap) {
  return page.evaluate((s) => {
    const canvas = document.getElementById('view');
    if (canvas.width !== s.width || canvas.dataset.imageRect !== s.rect) return Infinity;
    const now = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const [x, y, w, h] = s.rect.split(' ').map(Number);
    let total = 0;
    for (let row = y; row < y + h; row++) {
      for (let i = (row * s.width + x) * 4, end = i + w * 4; i < end; i++) {
        if (i % 4 !== 3) total += Math.abs(now[i] - s.data[i]);
      }
    }
    return total / (w * h * 3);
  }, snap);
}

/** The window the canvas shows, once it has caught up with what the controls ask for. */
async function drawnWindow(page) {
  await page.waitForFunction(() => {
    const { windowCenter, windowWidth } = document.getElementById('view').dataset;
    return Number(windowCenter) === document.getElementById('wc').valueAsNumber
      && Number(windowWidth) === document.getElementById('ww').valueAsNumber;
  });
  return page.evaluate(() => {
    const { windowCenter, windowWidth } = document.getElementById('view').dataset;
    return { center: Number(windowCenter), width: Number(windowWidth) };
  });
}

/** Label → value pairs of the details panel. */
function metadata(page) {
  return page.evaluate(() => Object.fromEntries(
    [...document.querySelectorAll('#metadata dt')].map((dt) => [dt.textContent, dt.nextElementSibling.textContent]),
  ));
}

test('MR_small.dcm is drawn in grey and its details are shown', async (t) => {
  const page = await openApp(t);
  await openFile(page, corpusFile('MR_small.dcm'));
  const stats = await imageStats(page);
  assert.ok(stats.std > 10, `luminance std ${stats.std} too flat for an MR slice`);
  assert.ok(stats.colours > 32, `only ${stats.colours} distinct colours in the image area`);
  assert.ok(stats.colourful < 0.001, 'a MONOCHROME2 image drawn in colour');
  assert.ok(Math.abs(stats.w - stats.h) <= 2, `64×64 drawn as ${stats.w}×${stats.h}`);
  const meta = await metadata(page);
  assert.equal(meta.Modality, 'MR');
  assert.equal(meta.Size, '64 × 64');
  assert.equal(await page.textContent('#file-name'), 'MR_small.dcm');
  assert.ok(await page.isHidden('#hint'), 'the empty-state hint still covers the image');
  const shown = await drawnWindow(page);
  assert.ok(shown.width > 0, `window width ${shown.width}`);
  assert.ok(await page.isEnabled('#wc'));
});

test('RG1_UNCR.dcm (MONOCHROME1 CR) is drawn and labelled MONOCHROME1', async (t) => {
  const page = await openApp(t);
  await openFile(page, corpusFile('RG1_UNCR.dcm'));
  const meta = await metadata(page);
  assert.equal(meta.Photometric, 'MONOCHROME1');
  assert.equal(meta.Modality, 'CR');
  const stats = await imageStats(page);
  assert.ok(stats.std > 10, `luminance std ${stats.std} too flat for a radiograph`);
  assert.ok(stats.colours > 32, `only ${stats.colours} distinct colours`);
  assert.ok(stats.colourful < 0.001, 'a grey radiograph drawn in colour');
});

test('SC_rgb_jpeg_dcmtk.dcm (JPEG baseline YBR_FULL) is drawn in colour with window controls off', async (t) => {
  const page = await openApp(t);
  await openFile(page, corpusFile('SC_rgb_jpeg_dcmtk.dcm'));
  const stats = await imageStats(page);
  assert.ok(stats.colourful > 0.05, `only ${(stats.colourful * 100).toFixed(1)} % of pixels are coloured`);
  assert.ok(await page.isDisabled('#wc'));
  assert.ok(await page.isDisabled('#ww'));
  assert.ok(await page.isDisabled('#tool-window'));
  assert.equal(await page.getAttribute('#tool-pan', 'aria-pressed'), 'true');
  assert.equal(await page.getAttribute('#view', 'data-window-center'), null, 'a colour image claims a window');
});

test('a skin photo opens in colour as a photo', async (t) => {
  const dir = sharedData(t, 'originals');
  if (!dir) return;
  const photo = readdirSync(dir).filter((f) => /^skin_.*\.jpe?g$/i.test(f)).sort()[0];
  assert.ok(photo, `no skin_*.jpg in ${dir}`);
  const page = await openApp(t);
  await openFile(page, path.join(dir, photo));
  const stats = await imageStats(page);
  assert.ok(stats.colourful > 0.05, `only ${(stats.colourful * 100).toFixed(1)} % of pixels are coloured`);
  assert.ok(stats.std > 5, `luminance std ${stats.std}`);
  assert.match((await metadata(page)).Modality ?? '', /photo/i);
});

test('a file dropped on the viewer opens', async (t) => {
  const page = await openApp(t);
  const bytes = [...readFileSync(corpusFile('MR_small.dcm'))];
  await page.evaluate((data) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new Uint8Array(data)], 'MR_small.dcm'));
    const view = document.getElementById('view');
    for (const type of ['dragenter', 'dragover', 'drop']) {
      view.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }
  }, bytes);
  await page.waitForFunction(() => document.getElementById('view').dataset.file === 'MR_small.dcm');
  assert.ok((await imageStats(page)).std > 10, 'the dropped file was not drawn');
  assert.ok(!(await page.locator('#viewer').evaluate((el) => el.classList.contains('drop-target'))),
    'the drop highlight stayed on');
});

test('a window drag changes the drawn window and pixels; Reset restores them', async (t) => {
  const page = await openApp(t);
  await openFile(page, corpusFile('MR_small.dcm'));
  const original = await drawnWindow(page);
  const snap = await snapshot(page);

  const box = await page.locator('#view').boundingBox();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.3);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.5, { steps: 12 });
  await page.mouse.up();

  const dragged = await drawnWindow(page);
  assert.ok(dragged.width > original.width, `dragging right should widen: ${original.width} → ${dragged.width}`);
  assert.ok(dragged.center > original.center, `dragging down should raise the center: ${original.center} → ${dragged.center}`);
  const diff = await meanAbsDiff(page, snap);
  assert.ok(diff > 5 && diff !== Infinity, `pixels barely changed (mean abs diff ${diff})`);

  await page.click('#reset');
  assert.deepEqual(await drawnWindow(page), original);
  assert.equal(await meanAbsDiff(page, snap), 0, 'Reset did not bring back the same picture');
});

test('typing window center and width redraws with those values', async (t) => {
  const page = await openApp(t);
  await openFile(page, corpusFile('MR_small.dcm'));
  const snap = await snapshot(page);
  await page.fill('#wc', '300');
  await page.fill('#ww', '200');
  assert.deepEqual(await drawnWindow(page), { center: 300, width: 200 });
  assert.ok((await meanAbsDiff(page, snap)) > 5, 'a new window did not change the pixels');
});

test('a file that fails keeps the previous image, details and window', async (t) => {
  const page = await openApp(t);
  await openFile(page, corpusFile('MR_small.dcm'));
  const window = await drawnWindow(page);
  const meta = await metadata(page);
  const snap = await snapshot(page);

  await page.setInputFiles('input[type=file]', corpusFile('MR_truncated.dcm'));
  await page.waitForFunction(() => document.body.dataset.state === 'error');
  assert.ok(await page.isVisible('#error'));
  assert.match(await page.textContent('#error'), /MR_truncated\.dcm/);
  assert.equal(await page.getAttribute('#view', 'data-file'), 'MR_small.dcm');
  assert.equal(await page.textContent('#file-name'), 'MR_small.dcm');
  assert.deepEqual(await metadata(page), meta);
  assert.deepEqual(await drawnWindow(page), window);
  assert.equal(await meanAbsDiff(page, snap), 0, 'the previous image was disturbed');

  await page.click('#error-close');
  assert.ok(await page.isHidden('#error'));
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'opened');
});

test('the mouse wheel and zoom buttons zoom the drawn image', async (t) => {
  const page = await openApp(t);
  await openFile(page, corpusFile('MR_small.dcm'));
  const fitted = await backgroundPixels(page);
  assert.ok(fitted > 0, 'a square image on a landscape canvas should leave a letterbox');

  const box = await page.locator('#view').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, -400);
  await page.waitForFunction(() => document.getElementById('view').dataset.imageRect.startsWith('0 0 '));
  const zoomed = await backgroundPixels(page);
  assert.ok(zoomed < fitted, `zooming in left ${zoomed} background pixels (fitted: ${fitted})`);

  await page.click('#zoom-out');
  await page.click('#zoom-out');
  await page.click('#zoom-out');
  await page.click('#zoom-out');
  const out = await backgroundPixels(page);
  assert.ok(out > fitted, `zooming out left ${out} background pixels (fitted: ${fitted})`);
});

test('a two-finger pinch zooms without touching the window', async (t) => {
  const page = await openApp(t);
  await openFile(page, corpusFile('MR_small.dcm'));
  const window = await drawnWindow(page);
  const fitted = await backgroundPixels(page);
  const rect = await page.getAttribute('#view', 'data-image-rect');

  const box = await page.locator('#view').boundingBox();
  const [cx, cy] = [box.x + box.width / 2, box.y + box.height / 2];
  const fingers = (spread) => [{ x: cx - spread, y: cy, id: 0 }, { x: cx + spread, y: cy, id: 1 }];
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: fingers(40) });
  for (let spread = 60; spread <= 200; spread += 20) {
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: fingers(spread) });
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });

  await page.waitForFunction((r) => document.getElementById('view').dataset.imageRect !== r, rect);
  const pinched = await backgroundPixels(page);
  assert.ok(pinched < fitted, `pinching out left ${pinched} background pixels (fitted: ${fitted})`);
  assert.deepEqual(await drawnWindow(page), window);
});

test('a multi-frame file can be stepped through', async (t) => {
  const page = await openApp(t);
  await openFile(page, corpusFile('emri_small.dcm'));
  assert.ok(await page.isVisible('#frames'));
  const frames = Number((await metadata(page)).Frames);
  assert.ok(frames > 1, `emri_small.dcm reports ${frames} frames`);
  assert.equal(await page.getAttribute('#frame', 'max'), String(frames - 1));
  const snap = await snapshot(page);
  await page.click('#frame-next');
  await page.waitForFunction(() => document.getElementById('view').dataset.frame === '1');
  assert.equal(await page.textContent('#frame-out'), `2 / ${frames}`);
  assert.ok((await meanAbsDiff(page, snap)) > 0, 'frame 2 looks exactly like frame 1');
});

test('every control is reachable with the keyboard', async (t) => {
  const page = await openApp(t);
  await openFile(page, corpusFile('MR_small.dcm'));
  const reached = [];
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press('Tab');
    reached.push(await page.evaluate(() => document.activeElement.id));
  }
  for (const id of ['file', 'tool-window', 'tool-pan', 'zoom-out', 'zoom-in', 'reset', 'wc', 'ww']) {
    assert.ok(reached.includes(id), `#${id} is not reached by Tab (reached: ${reached.join(', ')})`);
  }
});

for (const [width, height] of [[768, 1024], [1024, 768]]) {
  test(`layout at ${width}×${height}: canvas dominant, controls visible, named and touch-sized`, async (t) => {
    const page = await openApp(t, { width, height });
    mkdirSync(artifactsDir, { recursive: true });
    assert.ok(await page.isVisible('#hint'), 'no empty-state hint before a file is open');
    await page.screenshot({ path: path.join(artifactsDir, `empty-${width}x${height}.png`) });
    await openFile(page, corpusFile('MR_small.dcm'));

    const canvas = await page.locator('#view').boundingBox();
    assert.ok(canvas.width * canvas.height >= 0.5 * width * height,
      `canvas ${canvas.width}×${canvas.height} is under half of the ${width}×${height} screen`);
    const open = page.getByText('Open image…', { exact: true });
    assert.ok(await open.isVisible(), 'the Open image… button is not visible');
    const openBox = await open.boundingBox();
    assert.ok(openBox.y + openBox.height <= height && openBox.x + openBox.width <= width, 'Open image… is off screen');

    const controls = await page.evaluate(() => [...document.querySelectorAll('button, .button, input')]
      .filter((el) => el.type !== 'file' && el.checkVisibility())
      .map((el) => {
        const r = el.getBoundingClientRect();
        const name = el.getAttribute('aria-label') || el.labels?.[0]?.textContent || el.textContent;
        return { id: el.id || el.textContent.trim(), w: r.width, h: r.height, name: name.trim() };
      }));
    assert.ok(controls.length >= 8, `only ${controls.length} visible controls`);
    const small = controls.filter((c) => c.w < 44 || c.h < 44);
    assert.deepEqual(small, [], 'controls smaller than 44×44');
    assert.deepEqual(controls.filter((c) => !c.name), [], 'controls without an accessible name');
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), 'the page scrolls sideways');

    await page.screenshot({ path: path.join(artifactsDir, `layout-${width}x${height}.png`) });
  });
}

test('the app is served under its security policy, and nothing else of the repository is', async (t) => {
  // The one console error allowed is the browser's report of the script this test plants.
  const page = await openAppIn(browser, t, undefined, null, /example\.invalid/);
  // Every policy violation the page meets is counted (the browser also logs it, which fails openApp).
  await page.evaluate(() => {
    window.violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.violations.push(e.violatedDirective));
  });
  await openFile(page, corpusFile('MR_small.dcm'));
  assert.deepEqual(await page.evaluate(() => window.violations), []);
  const response = await fetch(new URL('/index.html', baseUrl));
  const policy = response.headers.get('content-security-policy') ?? '';
  for (const directive of ["default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "connect-src 'self'", "frame-ancestors 'none'"]) {
    assert.ok(policy.includes(directive), `${directive} in ${policy}`);
  }
  assert.equal(response.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(response.headers.get('cross-origin-opener-policy'), 'same-origin');
  assert.match(response.headers.get('permissions-policy') ?? '', /camera=\(\)/);
  // A script from elsewhere is refused by the page itself, not only by the server's choice of files.
  const blocked = await page.evaluate(() => new Promise((resolve) => {
    const script = document.createElement('script');
    script.src = 'https://example.invalid/x.js';
    document.addEventListener('securitypolicyviolation', (e) => resolve(e.violatedDirective), { once: true });
    // Without a policy the load just fails: give the violation report a moment, then say so.
    script.onerror = () => setTimeout(() => resolve('no violation'), 500);
    document.head.append(script);
  }));
  assert.match(blocked, /^script-src/);
  for (const file of ['/.git/HEAD', '/Cargo.toml', '/crates/cli/Cargo.toml', '/.ci/run']) {
    assert.equal((await fetch(new URL(file, baseUrl))).status, 404, `${file} is not served`);
  }
});
