// Browser inference benchmark, for `cargo xtask bench`: the page's CPU path (the app's wasm,
// pkg/bedside_web.js, as `cargo xtask serve` builds it) against onnxruntime-web's wasm backend on the
// same network, in one headless Chromium, one thread each.
//
//   BEDSIDE_URL=http://127.0.0.1:PORT node tests/bench/inference.mjs --iterations N \
//     --ort DIST_DIR TASK=MODEL_DIR=MODEL_ONNX...
//
// For each task: Bedside's `Model` is loaded on "cpu" from the folder's model.json, model.bin and (if
// present) lesion.json + lesion.bin, and `Model.warmUp()` — one pass on a blank input at the model's
// input size: the network, its read-back, the heat map and the lesion outline — is timed; then
// onnxruntime-web (its `ort.wasm.min.mjs`, wasm execution provider, numThreads 1) runs the folder's
// network exported by `bedside export --onnx` on the same blank input, every output fetched; and
// Bedside's `Model` again on "cpu-fp32" (the engine in f32, where "cpu" computes with int8 weights).
// Where model.json's `input.mirror_average` is set, `warmUp()` runs the network twice — on the input
// and on its mirror image, whose outputs the page averages — and so does the peer: two `session.run`s,
// batch 1 each, so that both sides do the work one diagnosis needs.
// Medians of N runs after two warm-ups each. One JSON line per task: task, iterations, passes (network
// passes per run, on both sides), ours_ms, onnxruntime_web_ms, ratio (ours / onnxruntime-web's),
// fp32_ms and int8_vs_fp32 (ours_ms / fp32_ms); ours_cpu_ms and onnxruntime_web_cpu_ms, the CPU time
// of all the browser's processes per run (DevTools' SystemInfo.getProcessInfo, read around the runs:
// the energy proxy); and simd_peak_macs_per_s, the CPU engine's pair instruction alone (`simdPeak`,
// best of five), for the roofline.
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
let iterations = 50;
let ortDist = null;
const jobs = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--iterations') iterations = Number(args[++i]);
  else if (args[i] === '--ort') ortDist = args[++i];
  else {
    const [task, dir, onnx] = args[i].split('=');
    jobs.push({ task, dir, onnx });
  }
}
if (!process.env.BEDSIDE_URL || !ortDist || jobs.length === 0 || !(iterations >= 1)) {
  console.error('usage: BEDSIDE_URL=… node tests/bench/inference.mjs [--iterations N] --ort DIST TASK=DIR=ONNX...');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  page.on('console', (msg) => { if (msg.type() === 'error') console.error(`console: ${msg.text()}`); });
  const origin = process.env.BEDSIDE_URL;
  // Files the bench serves itself, on the app's origin: onnxruntime-web's build, the model folders and
  // the exported networks.
  const files = new Map();
  const serve = (urlPath, file) => files.set(urlPath, file);
  for (const name of ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm']) {
    serve(`/__bench__/ort/${name}`, path.join(ortDist, name));
  }
  for (const { task, dir, onnx } of jobs) {
    for (const name of ['model.json', 'model.bin', 'lesion.json', 'lesion.bin']) {
      if (existsSync(path.join(dir, name))) serve(`/__bench__/${task}/${name}`, path.join(dir, name));
    }
    serve(`/__bench__/${task}/model.onnx`, onnx);
  }
  const types = { '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
  await page.route('**/__bench__/**', (route) => {
    const url = new URL(route.request().url());
    if (url.pathname === '/__bench__/index.html') {
      return route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>bench</title>' });
    }
    const file = files.get(url.pathname);
    if (!file) return route.fulfill({ status: 404, body: 'not here' });
    return route.fulfill({ body: readFileSync(file), contentType: types[path.extname(file)] ?? 'application/octet-stream' });
  });
  await page.goto(new URL('/__bench__/index.html', origin).href);

  // The browser's CPU time, all its processes together (the page and its worker run in the
  // renderer's): the energy proxy, per run.
  const cdp = await browser.newBrowserCDPSession();
  const cpuSeconds = async () => {
    const { processInfo } = await cdp.send('SystemInfo.getProcessInfo');
    return processInfo.reduce((sum, p) => sum + p.cpuTime, 0);
  };
  // Each timing is one page.evaluate (two warm-up runs, then N timed), with the CPU time read around it.
  const measured = async (which) => {
    const before = await cpuSeconds();
    const ms = await page.evaluate(([which, iterations]) => window.bench.timed(which, iterations), [which, iterations]);
    const cpuMs = ((await cpuSeconds()) - before) * 1000 / (iterations + 2);
    return { ms, cpuMs };
  };

  // The pair instruction alone (`simdPeak`): the best of five calls, in multiply–accumulates per second.
  const peak = await page.evaluate(async () => {
    const { default: init, simdPeak } = await import('/pkg/bedside_web.js');
    await init();
    let best = 0;
    for (let i = 0; i < 5; i++) {
      const start = performance.now();
      const macs = simdPeak(20_000_000);
      best = Math.max(best, macs / ((performance.now() - start) / 1000));
    }
    return best;
  });

  for (const { task, dir } of jobs) {
    const hasLesion = existsSync(path.join(dir, 'lesion.json'));
    const passes = await page.evaluate(async ({ task, hasLesion }) => {
      const median = (times) => {
        times.sort((a, b) => a - b);
        const n = times.length;
        return n % 2 ? times[(n - 1) / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
      };
      const get = async (name) => {
        const response = await fetch(`/__bench__/${task}/${name}`);
        if (!response.ok) throw new Error(`${name}: ${response.status}`);
        return response;
      };
      const bytes = async (name) => new Uint8Array(await (await get(name)).arrayBuffer());
      const text = async (name) => (await get(name)).text();

      const { default: init, Model } = await import('/pkg/bedside_web.js');
      await init();
      const load = async (backend) => Model.load(await text('model.json'), await bytes('model.bin'), backend,
        hasLesion ? await text('lesion.json') : undefined, hasLesion ? await bytes('lesion.bin') : undefined);
      const ours = await load('cpu');
      const fp32 = await load('cpu-fp32');
      const input = ours.summary().input;

      const ort = await import('/__bench__/ort/ort.wasm.min.mjs');
      ort.env.wasm.wasmPaths = '/__bench__/ort/';
      ort.env.wasm.numThreads = 1;
      const session = await ort.InferenceSession.create(await bytes('model.onnx'), { executionProviders: ['wasm'] });
      const shape = [1, input.channels, input.height, input.width];
      const values = new Float32Array(shape.reduce((a, b) => a * b));
      // The mirror image: every row reversed.
      const mirrored = new Float32Array(values.length);
      for (let row = 0; row < values.length; row += input.width) {
        for (let x = 0; x < input.width; x++) mirrored[row + x] = values[row + input.width - 1 - x];
      }
      const mirror = JSON.parse(await text('model.json')).input.mirror_average === true;
      const inputs = (mirror ? [values, mirrored] : [values]).map((v) => new ort.Tensor('float32', v, shape));
      const runs = {
        ours: () => ours.warmUp(),
        fp32: () => fp32.warmUp(),
        peer: async () => {
          for (const tensor of inputs) {
            const outputs = await session.run({ input: tensor });
            for (const name of session.outputNames) outputs[name].data;
          }
        },
      };
      window.bench = {
        async timed(which, iterations) {
          const run = runs[which];
          await run();
          await run();
          const times = [];
          for (let i = 0; i < iterations; i++) {
            const start = performance.now();
            await run();
            times.push(performance.now() - start);
          }
          return median(times);
        },
        async release() {
          ours.free();
          fp32.free();
          await session.release();
        },
      };
      return inputs.length;
    }, { task, hasLesion });
    const ours = await measured('ours');
    const fp32 = await measured('fp32');
    const peer = await measured('peer');
    await page.evaluate(() => window.bench.release());
    console.log(JSON.stringify({
      task,
      iterations,
      passes,
      ours_ms: Number(ours.ms.toFixed(3)),
      onnxruntime_web_ms: Number(peer.ms.toFixed(3)),
      ratio: Number((ours.ms / peer.ms).toFixed(3)),
      fp32_ms: Number(fp32.ms.toFixed(3)),
      int8_vs_fp32: Number((ours.ms / fp32.ms).toFixed(3)),
      ours_cpu_ms: Number(ours.cpuMs.toFixed(3)),
      onnxruntime_web_cpu_ms: Number(peer.cpuMs.toFixed(3)),
      simd_peak_macs_per_s: Math.round(peak),
    }));
  }
} finally {
  await browser.close();
}
