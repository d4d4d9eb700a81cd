// The diagnosis panel: which model a file goes to, asking the worker for a diagnosis, showing the
// answer, the heat map controls, the model card summary and the compute backend. Inference itself
// runs in the worker (web/worker.js); this module only asks and shows.

const $ = (id) => document.getElementById(id);

// Which model answers, the notes and the class names are decided in Rust (the gate's verdict and
// each model's summary); this module shows them.

const percent = (p) => `${(100 * p).toFixed(1)} %`;
const interval = (m) => (m ? `${percent(m.value)} (95 % CI ${percent(m.low)}–${percent(m.high)})` : '—');

export class DiagnosisPanel {
  #worker;
  #viewer;
  #file = null; // {id, frame}: the file on screen
  #shown = null; // {id, task, frame, routed} of the diagnosis on screen (task as asked)
  #pending = null; // {id, task, frame} asked of the worker and not answered yet
  #summaries = new Map(); // task → model card summary

  constructor(worker, viewer) {
    this.#worker = worker;
    this.#viewer = viewer;
    $('task').addEventListener('change', () => this.#request());
    $('backend').addEventListener('change', () => {
      this.#shown = null;
      this.#request();
    });
    $('heat-toggle').addEventListener('click', () => {
      const visible = $('heat-toggle').getAttribute('aria-pressed') !== 'true';
      $('heat-toggle').setAttribute('aria-pressed', String(visible));
      this.#viewer.setOverlayStyle({ visible });
    });
    $('outline-toggle').addEventListener('click', () => {
      const visible = $('outline-toggle').getAttribute('aria-pressed') !== 'true';
      $('outline-toggle').setAttribute('aria-pressed', String(visible));
      this.#viewer.setOutlineVisible(visible);
    });
    $('heat-opacity').addEventListener('input', () => {
      this.#viewer.setOverlayStyle({ opacity: $('heat-opacity').valueAsNumber });
    });
    $('card-open').addEventListener('click', () => this.#openCard());
  }

  /** A new file is on screen: route it and ask for its diagnosis. */
  opened(id, info) {
    this.#file = { id, frame: 0 };
    this.#shown = null;
    this.#viewer.setOverlay(null);
    this.#viewer.setOutline(null);
    this.#showResult(null);
    // The user's choice stays as it is: it beats the file's Modality (the worker applies the rule).
    this.#request();
  }

  /** The frame on screen changed (multi-frame files): the diagnosis follows it. */
  rendered(id, frame) {
    if (!this.#file || this.#file.id !== id || this.#file.frame === frame) return;
    this.#file.frame = frame;
    this.#request();
  }

  /** Worker messages this panel owns; returns false for the others. */
  handle(msg) {
    switch (msg.type) {
      case 'model-progress':
        if (this.#pending) {
          $('model-progress').hidden = false;
          $('model-progress').value = msg.total ? msg.loaded / msg.total : 0;
          this.#status('loading', `Loading the ${msg.task} model… ${Math.round(msg.loaded / 1024)} KB`);
        }
        return true;
      case 'model-ready':
        this.#summaries.set(msg.task, msg.summary);
        this.#showBackend(msg.summary.backend, msg.summary.fallback);
        // The legend shows the heat map's own colour scale (the library's palette).
        $('heat-legend-bar').style.background =
          `linear-gradient(to right, ${msg.summary.heat_palette.map((c) => `rgb(${c})`).join(', ')})`;
        // Test hook: what loading cost.
        $('diagnosis').dataset.modelTimes = `load ${Math.round(msg.loadMs)} ms, warm-up ${Math.round(msg.warmUpMs)} ms`;
        $('model-progress').hidden = true;
        if (this.#pending) this.#status('running', 'Diagnosing…');
        return true;
      case 'model-error':
        $('model-progress').hidden = true;
        if (this.#pending) {
          this.#pending = null;
          this.#status('error', msg.message);
        }
        return true;
      case 'diagnosis':
        this.#onDiagnosis(msg);
        return true;
      case 'refused':
        this.#onRefused(msg);
        return true;
      case 'diagnosis-error':
        if (same(this.#pending, msg)) {
          this.#pending = null;
          this.#status('error', `Could not diagnose this image: ${msg.message}`);
        }
        return true;
      default:
        return false;
    }
  }

  #request() {
    const task = $('task').value;
    if (!this.#file) {
      // Nothing open yet: fetch the chosen model now, so the first file is answered sooner.
      for (const wanted of new Set(['gate', task === 'auto' ? 'chest' : task])) {
        this.#worker.postMessage({ type: 'load-model', task: wanted, backend: $('backend').value });
      }
      return;
    }
    const { id, frame } = this.#file;
    const wanted = { id, task, frame };
    if (same(this.#shown, wanted) || same(this.#pending, wanted)) return;
    this.#pending = wanted;
    this.#status(this.#summaries.has(task) && this.#summaries.has('gate') ? 'running' : 'loading', 'Diagnosing…');
    this.#worker.postMessage({ type: 'diagnose', id, task, frame, backend: $('backend').value });
  }

  #onDiagnosis(msg) {
    if (!same(this.#pending, msg)) return; // an answer for a file, frame or task no longer wanted
    this.#pending = null;
    this.#shown = { id: msg.id, task: msg.task, frame: msg.frame, routed: msg.routed };
    const summary = this.#summaries.get(msg.routed);
    this.#viewer.setOverlay(msg.heatMap.rgba, msg.heatMap.width, msg.heatMap.height, msg.region);
    this.#viewer.setOutline(msg.lesion?.found ? msg.lesion.outline : null, msg.region);
    this.#showBackend(msg.backend, msg.fallback);
    this.#showResult({ ...msg, task: msg.routed }, summary);
    // Disagreements are shown, not hidden: the model asked for (or the Modality's) against the gate.
    const seen = msg.gate.task;
    const note = msg.gate.note ? ` · ${msg.gate.note}` : '';
    const how = { choice: 'chosen', modality: "from the file's Modality", gate: 'recognised' }[msg.gate.routed_by];
    const shownTask = `${summary?.title ?? msg.routed} (${how})`;
    this.#status('done', `${shownTask} · ${backendName(msg.backend)} · ${Math.round(msg.ms)} ms${note}`);
    // Test hooks: the numbers behind what is on screen.
    const panel = $('diagnosis');
    panel.dataset.route = seen;
    panel.dataset.task = msg.routed;
    panel.dataset.label = msg.label;
    panel.dataset.mostLikely = msg.mostLikely;
    panel.dataset.probabilities = JSON.stringify(Object.fromEntries(msg.probabilities));
    panel.dataset.ms = String(msg.ms);
    panel.dataset.heatMapPeak = JSON.stringify(msg.heatMapPeak);
    if (msg.lesion) panel.dataset.lesion = JSON.stringify({ ...msg.lesion, outline: undefined });
    else delete panel.dataset.lesion;
    panel.dataset.count = String(Number(panel.dataset.count ?? 0) + 1);
  }

  #onRefused(msg) {
    if (!same(this.#pending, msg)) return;
    this.#pending = null;
    this.#shown = { id: msg.id, task: msg.task, frame: msg.frame, routed: null };
    this.#viewer.setOverlay(null);
    this.#viewer.setOutline(null);
    this.#showResult(null);
    const shares = msg.gate.probabilities.map(([c, p]) => `${c} ${percent(p)}`).join(', ');
    this.#status('refused', `${msg.message} (${shares})`);
    const panel = $('diagnosis');
    panel.dataset.route = 'other';
    panel.dataset.count = String(Number(panel.dataset.count ?? 0) + 1);
  }

  #showResult(msg, summary) {
    const enabled = Boolean(msg);
    $('result').hidden = !enabled;
    $('heat-toggle').disabled = !enabled;
    $('heat-opacity').disabled = !enabled;
    const lesion = msg?.lesion;
    $('outline-toggle').hidden = !lesion;
    $('outline-toggle').disabled = !lesion?.found;
    $('result-lesion').hidden = !lesion;
    if (lesion) {
      const unit = lesion.units; // 'mm' where the file gives a pixel spacing, else 'px'
      $('result-lesion').textContent = lesion.found
        ? `Lesion outline: area ${lesion.area.toFixed(lesion.units === 'mm' ? 1 : 0)} ${unit}², `
          + `longest diameter ${lesion.longest_diameter.toFixed(1)} ${unit}`
        : 'No lesion outlined';
    }
    if (!msg) {
      for (const key of ['task', 'route', 'label', 'mostLikely', 'probabilities', 'ms', 'lesion', 'heatMapPeak']) {
        delete $('diagnosis').dataset[key];
      }
      return;
    }
    const probability = Object.fromEntries(msg.probabilities);
    const className = (name) => summary?.class_titles?.[summary.classes.indexOf(name)] ?? name;
    // The review rule is the library's: `label` is already "uncertain" where it applies.
    const uncertain = msg.label === 'uncertain';
    $('result').dataset.uncertain = String(uncertain);
    $('result-label').textContent = uncertain ? 'Uncertain: needs review' : className(msg.label);
    $('result-probability').textContent = uncertain
      ? `Most likely ${className(msg.mostLikely)}: ${percent(probability[msg.mostLikely])} probability (calibrated)`
      : `${percent(probability[msg.label])} probability (calibrated)`;
    const positive = summary?.positive_class;
    let rule = 'Decided by the most probable class';
    if (msg.threshold != null && positive) {
      rule = `Operating threshold: ${positive} at ${percent(msg.threshold)} or more`;
      if (msg.mostLikely !== positive) rule += ` (${positive} here: ${percent(probability[positive])})`;
    }
    if (uncertain) {
      const band = summary?.review_band;
      rule += band
        ? `. Between ${percent(band[0])} and ${percent(band[1])} the model does not decide`
        : '. Too close to another answer for the model to decide';
    }
    $('result-threshold').textContent = rule;
    const list = $('differential');
    list.hidden = msg.task !== 'skin';
    if (msg.task === 'skin') {
      const top = [...msg.probabilities].sort((a, b) => b[1] - a[1]).slice(0, 3);
      list.replaceChildren(
        ...top.map(([name, p]) => {
          const li = document.createElement('li');
          li.textContent = `${className(name)}: ${percent(p)}`;
          return li;
        }),
      );
    }
  }

  #showBackend(backend, fallback) {
    $('backend-active').textContent = `Backend: ${backendName(backend)}`
      + (fallback ? ` (WebGPU not used: ${fallback})` : '');
    document.body.dataset.backend = backend; // test hook
  }

  #status(state, text) {
    $('diagnosis').dataset.state = state;
    $('diagnosis-status').textContent = text;
  }

  #openCard() {
    const task = this.#shown?.routed;
    const s = task && this.#summaries.get(task);
    if (!s) return;
    const v = s.card?.validation ?? {};
    const facts = [
      ['Model', `${s.title} (${s.task})`],
      ['Classes', s.classes.join(', ')],
      ['Version', `format ${s.format_version}, weights SHA-256 ${s.sha256.slice(0, 12)}`],
      ['Runs on', backendName(s.backend)],
      ['Validation images', v.n ?? '—'],
      [`Sensitivity (${s.positive_class})`, interval(v.sensitivity)],
      ['Specificity', interval(v.specificity)],
      ['AUC', interval(v.auc)],
      ['Accuracy', interval(v.accuracy)],
      ['Calibration error (ECE)', v.ece != null ? percent(v.ece) : '—'],
      ['Operating threshold', s.threshold != null ? `${s.positive_class} at ${percent(s.threshold)}` : 'most probable class'],
      ['Needs review', reviewRule(s)],
      ['Training data licence', s.licence],
    ];
    const items = [];
    for (const [label, value] of facts) {
      const dt = document.createElement('dt');
      const dd = document.createElement('dd');
      dt.textContent = label;
      dd.textContent = String(value);
      items.push(dt, dd);
    }
    $('card-facts').replaceChildren(...items);
    $('card-link').href = `models/${s.task}/MODEL_CARD.md`;
    $('card').showModal();
  }
}

function same(a, b) {
  return Boolean(a && b) && a.id === b.id && a.task === b.task && a.frame === b.frame;
}

/** When the model answers "uncertain: needs review", and how often it did on validation. */
function reviewRule(s) {
  if (!s.review) return 'never: every image gets a class';
  const share = s.card?.review?.validation?.uncertain_share;
  const often = share != null ? ` (${percent(share)} of validation images)` : '';
  if (s.review_band) return `${s.positive_class} between ${percent(s.review_band[0])} and ${percent(s.review_band[1])}${often}`;
  return `within ${s.review.margin.toFixed(2)} log-odds of another answer${often}`;
}

function backendName(backend) {
  return backend === 'webgpu' ? 'WebGPU' : 'CPU (Wasm SIMD)';
}
