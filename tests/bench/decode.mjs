// Decode-time benchmark of the browser build, for `cargo xtask bench`: the app's own wasm
// (pkg/bedside_web.js, as `cargo xtask serve` builds it) in headless Chromium.
//
//   BEDSIDE_URL=http://127.0.0.1:PORT node tests/bench/decode.mjs --iterations N FILE...
//
// Times `Study.open` — open the file from bytes in memory and decode its first frame, what the page
// does when a file is dropped — N times per file after one untimed warm-up run, and prints one JSON
// line per file with the same keys as the native and pydicom benchmarks: file, bytes, iterations,
// median_ms, min_ms, rows, columns.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
let iterations = 10;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--iterations') iterations = Number(args[++i]);
  else files.push(args[i]);
}
if (!process.env.BEDSIDE_URL || files.length === 0 || !(iterations >= 1)) {
  console.error('usage: BEDSIDE_URL=http://127.0.0.1:PORT node tests/bench/decode.mjs [--iterations N] FILE...');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  // A blank page of the app's origin, so that the module import below resolves against it.
  const blank = new URL('/__bench__/index.html', process.env.BEDSIDE_URL).href;
  await page.route(blank, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>bench</title>' }));
  await page.goto(blank);
  for (const file of files) {
    const bytes = readFileSync(file);
    const result = await page.evaluate(async ({ data, iterations }) => {
      const { default: init, Study } = await import('/pkg/bedside_web.js');
      await init();
      const input = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      const decode = () => {
        const study = Study.open(input, 'bench');
        const shape = [study.rows, study.columns];
        study.free();
        return shape;
      };
      const [rows, columns] = decode();
      const times = [];
      for (let i = 0; i < iterations; i++) {
        const start = performance.now();
        decode();
        times.push(performance.now() - start);
      }
      times.sort((a, b) => a - b);
      const n = times.length;
      const median = n % 2 ? times[(n - 1) / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
      return { median, min: times[0], rows, columns };
    }, { data: bytes.toString('base64'), iterations });
    console.log(JSON.stringify({
      file: path.basename(file),
      bytes: bytes.length,
      iterations,
      median_ms: Number(result.median.toFixed(3)),
      min_ms: Number(result.min.toFixed(3)),
      rows: result.rows,
      columns: result.columns,
    }));
  }
} finally {
  await browser.close();
}
