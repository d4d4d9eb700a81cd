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
  // task → {backend, cpu_ms, webgpu_ms}: Automatic's choice on this device, kept for later visits
  // (device timings, nothing of a patient's).
  #choices = loadChoices();
  #diagnosed; // called with the file's id when its diagnosis is on screen (it can then be shared)

  constructor(worker, viewer, { diagnosed = () => {} } = {}) {
    this.#worker = worker;
    this.#viewer = viewer;
    this.#diagnosed = diagnosed;
    this.#worker.postMessage({ type: 'backend-choices', choices: this.#choices });
    document.body.dataset.backendChoices = JSON.stringify(this.#choices); // test hook
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

  /**
   * A new file is on screen, at `frame`: route it and ask for its diagnosis. `restored`: the same file
   * opened again by a restarted worker, whose diagnosis stays on screen until the new one arrives.
   */
  opened(id, info, { frame = 0, restored = false } = {}) {
    this.#file = { id, frame };
    this.#shown = null;
    if (!restored) {
      this.#viewer.setOverlay(null);
      this.#viewer.setOutline(null);
      this.#showResult(null);
    }
    // The user's choice stays as it is: it beats the file's Modality (the worker applies the rule).
    this.#request();
  }

  /** The page started a fresh worker (web/app.js): what was asked of the old one is forgotten. */
  restarted(worker) {
    this.#worker = worker;
    this.#worker.postMessage({ type: 'backend-choices', choices: this.#choices });
    this.#pending = null;
    this.#shown = null;
    this.#file = null; // until the page opens the file again
    $('model-progress').hidden = true;
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
        this.#showBackend(msg.summary.backend, msg.summary.fallback, msg.task);
        // The legend shows the heat map's own colour scale (the library's palette).
        $('heat-legend-bar').style.background =
          `linear-gradient(to right, ${msg.summary.heat_palette.map((c) => `rgb(${c})`).join(', ')})`;
        // Test hook: what loading cost.
        $('diagnosis').dataset.modelTimes = `load ${Math.round(msg.loadMs)} ms, warm-up ${Math.round(msg.warmUpMs)} ms`;
        $('model-progress').hidden = true;
        if (this.#pending) this.#status('running', 'Diagnosing…');
        return true;
      case 'backend-timing':
        if ($('backend').value === 'auto') {
          $('backend-active').textContent = 'Backend: CPU (Wasm SIMD) (timing WebGPU on this device…)';
        }
        return true;
      case 'backend-choice':
        if (msg.choice) {
          this.#choices[msg.task] = msg.choice;
          saveChoices(this.#choices);
          document.body.dataset.backendChoices = JSON.stringify(this.#choices); // test hook
          if (this.#shown?.routed === msg.task) this.#showBackend(this.#shown.backend, this.#shown.fallback, msg.task);
        } else if ($('backend').value === 'auto') {
          $('backend-active').textContent = `Backend: CPU (Wasm SIMD) (WebGPU could not be timed: ${msg.message})`;
        }
        return true;
      case 'model-error':
        $('model-progress').hidden = true;
        if (this.#pending) {
          this.#pending = null;
          this.#status('error', msg.message);
        }
        return true;
      case 'assessment':
        if (msg.assessment.outcome === 'refused') this.#onRefused(msg);
        else this.#onDiagnosis(msg);
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

  /** `msg.assessment` is what `bedside predict` prints for the file; this only shows it. */
  #onDiagnosis(msg) {
    if (!same(this.#pending, msg)) return; // an answer for a file, frame or task no longer wanted
    this.#pending = null;
    const a = msg.assessment;
    this.#shown = { id: msg.id, task: msg.task, frame: msg.frame, routed: a.task, backend: msg.backend, fallback: msg.fallback };
    const summary = this.#summaries.get(a.task);
    this.#viewer.setOverlay(msg.heatMap.rgba, msg.heatMap.width, msg.heatMap.height, a.region);
    this.#viewer.setOutline(a.lesion?.found ? msg.outline : null, a.region);
    this.#showBackend(msg.backend, msg.fallback, a.task);
    this.#showResult(a, summary);
    // Disagreements are shown, not hidden: the model asked for (or the Modality's) against the gate.
    const note = a.note ? ` · ${a.note}` : '';
    const how = { choice: 'chosen', modality: "from the file's Modality", gate: 'recognised' }[a.routed_by];
    const shownTask = `${summary?.title ?? a.task} (${how})`;
    this.#status('done', `${shownTask} · ${backendName(msg.backend)} · ${Math.round(msg.ms)} ms${note}`);
    // Test hooks: the numbers behind what is on screen.
    const panel = $('diagnosis');
    panel.dataset.route = a.gate.task;
    panel.dataset.task = a.task;
    panel.dataset.label = a.label;
    panel.dataset.mostLikely = a.most_likely;
    panel.dataset.probabilities = JSON.stringify(a.probabilities);
    panel.dataset.ms = String(msg.ms);
    panel.dataset.heatMapPeak = JSON.stringify(a.heat_map_peak);
    if (a.lesion) panel.dataset.lesion = JSON.stringify(a.lesion);
    else delete panel.dataset.lesion;
    panel.dataset.count = String(Number(panel.dataset.count ?? 0) + 1);
    this.#diagnosed(msg.id);
  }

  /**
   * A shared session's diagnosis (`share-opened` in web/bridge.md), read only: its heat map covers
   * the whole `columns` × `rows` image. Nothing is asked of the worker.
   */
  showShared(d, columns, rows) {
    const threshold = d.thresholds[0] ?? null;
    const a = {
      task: d.task, label: d.label, most_likely: d.most_likely, lesion: null,
      probabilities: Object.fromEntries(d.probabilities), threshold: threshold?.[1] ?? null,
    };
    const summary = { title: d.model.name, classes: d.probabilities.map(([c]) => c), positive_class: threshold?.[0] };
    if (d.heat_map) this.#viewer.setOverlay(d.heat_map.rgba, d.heat_map.width, d.heat_map.height, [0, 0, columns, rows]);
    this.#showResult(a, summary);
    this.#status('done', `Shared diagnosis by ${d.model.name} (${d.task}), model version ${d.model.version}, weights SHA-256 ${d.model.sha256.slice(0, 12)}`);
    const panel = $('diagnosis');
    panel.dataset.task = a.task;
    panel.dataset.label = a.label;
    panel.dataset.mostLikely = a.most_likely;
    panel.dataset.probabilities = JSON.stringify(a.probabilities);
    panel.dataset.shared = 'true';
    panel.dataset.count = String(Number(panel.dataset.count ?? 0) + 1);
  }

  #onRefused(msg) {
    if (!same(this.#pending, msg)) return;
    this.#pending = null;
    this.#shown = { id: msg.id, task: msg.task, frame: msg.frame, routed: null };
    this.#viewer.setOverlay(null);
    this.#viewer.setOutline(null);
    this.#showResult(null);
    const { message, gate } = msg.assessment;
    const shares = Object.entries(gate.probabilities).map(([c, p]) => `${c} ${percent(p)}`).join(', ');
    this.#status('refused', `${message} (${shares})`);
    const panel = $('diagnosis');
    panel.dataset.route = 'other';
    panel.dataset.count = String(Number(panel.dataset.count ?? 0) + 1);
  }

  /** The diagnosed assessment `a` (null: nothing to show), with its model's card summary. */
  #showResult(a, summary) {
    const enabled = Boolean(a);
    $('result').hidden = !enabled;
    $('heat-toggle').disabled = !enabled;
    $('heat-opacity').disabled = !enabled;
    const lesion = a?.lesion;
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
    if (!a) {
      for (const key of ['task', 'route', 'label', 'mostLikely', 'probabilities', 'ms', 'lesion', 'heatMapPeak']) {
        delete $('diagnosis').dataset[key];
      }
      return;
    }
    const probability = a.probabilities; // class → calibrated probability
    const className = (name) => summary?.class_titles?.[summary.classes.indexOf(name)] ?? name;
    // The review rule is the library's: `label` is already "uncertain" where it applies.
    const uncertain = a.label === 'uncertain';
    $('result').dataset.uncertain = String(uncertain);
    $('result-label').textContent = uncertain ? 'Uncertain: needs review' : className(a.label);
    $('result-probability').textContent = uncertain
      ? `Most likely ${className(a.most_likely)}: ${percent(probability[a.most_likely])} probability (calibrated)`
      : `${percent(probability[a.label])} probability (calibrated)`;
    const positive = summary?.positive_class;
    let rule = 'Decided by the most probable class';
    if (a.threshold != null && positive) {
      rule = `Operating threshold: ${positive} at ${percent(a.threshold)} or more`;
      if (a.most_likely !== positive) rule += ` (${positive} here: ${percent(probability[positive])})`;
    }
    if (uncertain) {
      const band = summary?.review_band;
      rule += band
        ? `. Between ${percent(band[0])} and ${percent(band[1])} the model does not decide`
        : '. Too close to another answer for the model to decide';
    }
    $('result-threshold').textContent = rule;
    const list = $('differential');
    list.hidden = a.task !== 'skin';
    if (a.task === 'skin') {
      const top = Object.entries(a.probabilities).sort((x, y) => y[1] - x[1]).slice(0, 3);
      list.replaceChildren(
        ...top.map(([name, p]) => {
          const li = document.createElement('li');
          li.textContent = `${className(name)}: ${percent(p)}`;
          return li;
        }),
      );
    }
  }

  #showBackend(backend, fallback, task) {
    const choice = $('backend').value === 'auto' ? this.#choices[task] : null;
    const ms = (t) => `${t < 10 ? t.toFixed(1) : Math.round(t)} ms`;
    $('backend-active').textContent = `Backend: ${backendName(backend)}`
      + (fallback ? ` (WebGPU not used: ${fallback})` : '')
      + (choice ? ` (Automatic uses ${backendName(choice.backend)} here: a pass takes ${ms(choice.cpu_ms)} on the CPU, ${ms(choice.webgpu_ms)} on WebGPU)` : '');
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

const CHOICES = 'bedside-backend-choices';

/** Automatic's choices kept from earlier visits ({} where none, or storage is unavailable). */
function loadChoices() {
  try {
    const kept = JSON.parse(localStorage.getItem(CHOICES) ?? '{}');
    return kept && typeof kept === 'object' ? kept : {};
  } catch {
    return {};
  }
}

function saveChoices(choices) {
  try {
    localStorage.setItem(CHOICES, JSON.stringify(choices));
  } catch {
    // Not kept (storage full or refused): the next visit times again.
  }
}

function backendName(backend) {
  return backend === 'webgpu' ? 'WebGPU' : 'CPU (Wasm SIMD)';
}
