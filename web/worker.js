// The decode worker: the only place the Wasm module runs, so the page never freezes.
// One message bridge (see web/bridge.md for the protocol).
import init, { Study } from '../pkg/bedside_web.js';

let study = null; // the last file that opened; a failed open leaves it in place
let studyId = 0;

const ready = init().then(
  () => self.postMessage({ type: 'ready' }),
  (err) => self.postMessage({ type: 'fatal', message: `could not start the decoder: ${err}` }),
);

self.onmessage = async ({ data: msg }) => {
  await ready;
  try {
    if (msg.type === 'open') {
      const opened = Study.open(new Uint8Array(msg.bytes), msg.name);
      if (study) study.free();
      study = opened;
      studyId = msg.id;
      self.postMessage({ type: 'opened', id: msg.id, name: msg.name, ...study.summary() });
    } else if (msg.type === 'render') {
      if (!study || msg.id !== studyId) return; // a render for a file that was replaced
      const rgba = study.render(msg.frame, msg.center, msg.width);
      self.postMessage(
        {
          type: 'rendered', id: msg.id, frame: msg.frame, center: msg.center, width: msg.width,
          columns: study.columns, rows: study.rows, rgba: rgba.buffer,
        },
        [rgba.buffer],
      );
    }
  } catch (err) {
    self.postMessage({ type: 'error', id: msg.id, name: msg.name, message: String(err.message ?? err) });
  }
};
