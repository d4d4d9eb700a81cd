// Sharing for review: the clinician's "Share for review" panel (seal in the worker, upload to the
// relay, the link, replies) and the reviewer's read-only review mode (fetch, open in the worker, show,
// reply). De-identification and cryptography run in the worker (web/bridge.md, "Sharing"); this
// module only asks it, talks to the relay and shows the answers.

const $ = (id) => document.getElementById(id);

/** How often the clinician's tab asks the relay for replies while the share panel is open. */
const REPLY_POLL_MS = 5000;

/** The relay's API, on the origin that served the page. */
const api = (path) => new URL(`api/shares${path}`, document.baseURI).href;

/**
 * `{id, fragment}` when the page was opened by a share link (`#share=<id>&k=<secret>`), else null.
 * The fragment is passed whole to the worker, which reads the key (the format's rule, in Rust).
 */
export function shareLink(hash) {
  const fragment = hash.replace(/^#/, '');
  const id = new URLSearchParams(fragment).get('share');
  if (id == null) return null;
  return { id, fragment };
}

/** Requests to the worker answered by `request` number (replies of several kinds may interleave). */
export class ShareBridge {
  #worker;
  #next = 1;
  #waiting = new Map();

  constructor(worker) {
    this.#worker = worker;
  }

  /** A fresh worker took over: what the old one was asked is lost. */
  restarted(worker) {
    this.#worker = worker;
    for (const { reject } of this.#waiting.values()) reject(new Error('the decoder restarted; try again'));
    this.#waiting.clear();
  }

  ask(msg, transfer = []) {
    const request = this.#next++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(request, { resolve, reject });
      this.#worker.postMessage({ ...msg, request }, transfer);
    });
  }

  /** Worker messages of the sharing bridge; returns false for the others. */
  handle(msg) {
    if (!['share-prepared', 'share-sealed', 'share-opened', 'reply-sealed', 'replies-opened', 'share-error'].includes(msg.type)) {
      return false;
    }
    const waiting = this.#waiting.get(msg.request);
    this.#waiting.delete(msg.request);
    if (msg.type === 'share-error') waiting?.reject(new Error(msg.message));
    else waiting?.resolve(msg);
    return true;
  }
}

/** One readable line for a failed relay request (`what`: what was being done). */
async function relayError(response, what) {
  let detail = '';
  try {
    detail = (await response.json()).error ?? '';
  } catch {
    // not JSON: the status says enough
  }
  const known = {
    404: 'not found (it may have been deleted, or opened once already)',
    410: 'this share has expired',
    413: 'the share is too large for the relay',
    429: 'the relay is busy with too many requests; wait a minute and try again',
  }[response.status];
  const more = detail && detail !== known ? ` (${detail})` : '';
  return new Error(`${what}: ${known ?? `the relay answered ${response.status}`}${more}`);
}

/** fetch, with "offline" said plainly. */
async function relay(url, init, what) {
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new Error(`${what}: cannot reach the relay (${navigator.onLine === false ? 'this device is offline' : 'network error'}); nothing is lost, try again`);
  }
  if (!response.ok) throw await relayError(response, what);
  return response;
}

/**
 * Sealed replies from the relay's `GET …/replies`, oldest first: each is a big-endian u32 length and
 * that many bytes (web/bridge.md).
 */
async function fetchReplies(id) {
  const response = await relay(api(`/${encodeURIComponent(id)}/replies`), { cache: 'no-store' }, 'Could not check for replies');
  const bytes = new Uint8Array(await response.arrayBuffer());
  const view = new DataView(bytes.buffer);
  const replies = [];
  for (let at = 0; at < bytes.length;) {
    if (at + 4 > bytes.length) throw new Error('Could not check for replies: the relay sent a cut-off list');
    const length = view.getUint32(at);
    if (at + 4 + length > bytes.length) throw new Error('Could not check for replies: the relay sent a cut-off list');
    replies.push(bytes.slice(at + 4, at + 4 + length).buffer);
    at += 4 + length;
  }
  return replies;
}

const OPINIONS = { agree: 'Agrees', disagree: 'Disagrees', uncertain: 'Uncertain', none: 'No opinion' };

/** The decrypted replies as list items (text only, never HTML: the reviewer's words are untrusted). */
function showReplies(list, replies) {
  const items = replies.map((r) => {
    const li = document.createElement('li');
    if (r.error) {
      li.textContent = `A reply that cannot be read: ${r.error}`;
      li.className = 'reply-error';
    } else {
      li.dataset.opinion = r.opinion;
      li.textContent = `${OPINIONS[r.opinion] ?? r.opinion}: ${r.text}`;
    }
    return li;
  });
  list.replaceChildren(...items);
}

/** The clinician's side: "Share for review" after a diagnosis. */
export class SharePanel {
  #bridge;
  #viewer;
  #blackOut = []; // [x, y, w, h] in image pixels, as drawn or typed: the worker makes them whole pixels
  #file = null; // id of the file on screen
  #diagnosed = null; // id of the file whose diagnosis is on screen
  #sealed = null; // {id, note, ttl, burn, ciphertext, fragment}: kept until the relay has it, for retries
  #share = null; // {id, link, fragment, deleteToken}: the share made last
  #poll = 0;
  #checking = false;

  constructor(bridge, viewer) {
    this.#bridge = bridge;
    this.#viewer = viewer;
    $('share-open').addEventListener('click', () => this.#openForm());
    $('share-cancel').addEventListener('click', () => {
      this.#closeForm();
      this.#setBlackOut([]);
    });
    $('share-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#create();
    });
    $('share-copy').addEventListener('click', () => this.#copy());
    $('share-delete').addEventListener('click', () => this.#delete());
    $('share-check').addEventListener('click', () => this.#checkReplies());
    document.addEventListener('visibilitychange', () => this.#schedule());
    $('black-out-draw').addEventListener('click', () => this.#draw(!this.#viewer.drawing));
    $('black-out-clear').addEventListener('click', () => this.#setBlackOut([]));
    $('black-out-add').addEventListener('click', () => this.#addTyped());
    for (const field of ['x', 'y', 'width', 'height']) {
      // Enter in a field adds the rectangle; it must not submit the form (which creates the share).
      $(`black-out-${field}`).addEventListener('keydown', (e) => {
        if (e.key !== 'Enter') return;
        e.preventDefault();
        this.#addTyped();
      });
    }
  }

  /** Drawing rectangles to black out on the image, or not. */
  #draw(on) {
    this.#viewer.onBlackOutDrawn = on ? (rect) => this.#setBlackOut([...this.#blackOut, rect]) : null;
    $('black-out-draw').setAttribute('aria-pressed', String(on));
    document.body.dataset.drawing = String(on); // test hook
  }

  #setBlackOut(rects) {
    this.#blackOut = rects;
    this.#viewer.setBlackOut(rects);
    const n = rects.length;
    $('black-out-count').textContent = n ? `${n} rectangle${n > 1 ? 's' : ''} to black out` : 'Nothing blacked out';
    $('black-out-clear').disabled = n === 0;
  }

  /** The rectangle typed in pixels (the keyboard's way to draw one); the worker checks and clamps it. */
  #addTyped() {
    const values = ['x', 'y', 'width', 'height'].map((f) => $(`black-out-${f}`).valueAsNumber);
    if (!values.every(Number.isFinite)) {
      $('black-out-count').textContent = 'Enter X, Y, width and height in pixels first.';
      $(`black-out-${['x', 'y', 'width', 'height'][values.findIndex((v) => !Number.isFinite(v))]}`).focus();
      return;
    }
    this.#setBlackOut([...this.#blackOut, values]);
  }

  /** A new file is on screen: it has no diagnosis to share yet. */
  opened(id) {
    this.#file = id;
    this.#diagnosed = null;
    this.#sealed = null;
    $('share-open').disabled = true;
    this.#closeForm();
    this.#setBlackOut([]);
  }

  /** The file on screen got a diagnosis (not a refusal): it can be shared. */
  diagnosed(id) {
    if (id !== this.#file) return;
    this.#diagnosed = id;
    $('share-open').disabled = false;
  }

  async #openForm() {
    if (this.#diagnosed == null) return;
    $('share-form').hidden = false;
    $('share-open').setAttribute('aria-expanded', 'true');
    this.#status('', '');
    $('share-warning').hidden = true;
    $('share-note').focus();
    try {
      const prepared = await this.#bridge.ask({ type: 'share-prepare', id: this.#diagnosed });
      // The rule (Burned In Annotation, or the kind of image) is the imaging library's.
      if (prepared.burnedInWarning) {
        $('share-warning').textContent = prepared.burnedInRisk === 'yes'
          ? 'Warning: this image says it has text burned into its pixels (names, dates, IDs). De-identification cannot remove it: look at the image and black out what identifies the patient.'
          : 'Warning: images of this kind often have text burned into their pixels (names, dates, IDs), which de-identification cannot remove: look at the image and black out what identifies the patient.';
        $('share-warning').hidden = false;
      }
      $('share').dataset.burnedIn = prepared.burnedInRisk; // test hook
    } catch (err) {
      this.#status('error', `Could not prepare the share: ${err.message}`);
    }
  }

  #closeForm() {
    this.#draw(false);
    $('share-form').hidden = true;
    $('share-open').setAttribute('aria-expanded', 'false');
  }

  async #create() {
    const id = this.#diagnosed;
    if (id == null) return;
    const note = $('share-note').value;
    const ttl = $('share-ttl').value;
    const burn = $('share-burn').checked;
    const blackOut = this.#blackOut;
    $('share-create').disabled = true;
    try {
      // A retry after a relay error sends the same sealed bytes when nothing changed.
      let sealed = this.#sealed;
      if (!sealed || sealed.id !== id || sealed.note !== note || sealed.blackOut !== blackOut) {
        this.#status('busy', 'De-identifying and encrypting…');
        const msg = await this.#bridge.ask({ type: 'share-seal', id, note, created: new Date().toISOString(), blackOut });
        sealed = { id, note, blackOut, blackedOut: msg.blackedOut, ciphertext: msg.ciphertext, fragment: msg.fragment };
        this.#sealed = sealed;
      }
      this.#status('busy', 'Uploading the encrypted share…');
      const query = `?ttl=${encodeURIComponent(ttl)}${burn ? '&burn=1' : ''}`;
      const response = await relay(api(query), {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream' },
        body: sealed.ciphertext,
      }, 'Could not upload the share');
      const answer = await response.json();
      // The secret travels only in the fragment, which browsers never send to a server.
      const page = new URL(document.baseURI);
      page.hash = `share=${encodeURIComponent(answer.id)}&${sealed.fragment}`;
      this.#share = { id: answer.id, link: page.href, fragment: sealed.fragment, deleteToken: answer.delete_token };
      this.#sealed = null;
      $('share').dataset.blackedOut = JSON.stringify(sealed.blackedOut); // test hook: the pixels made black
      this.#setBlackOut([]);
      $('share-link').value = page.href;
      $('share-result').hidden = false;
      $('share-replies').replaceChildren();
      $('share-delete').disabled = false;
      this.#closeForm();
      const n = sealed.blackedOut.length;
      const hidden = n ? `; ${n} rectangle${n > 1 ? 's' : ''} blacked out` : '';
      this.#status('done', `Share created; the link works for ${$('share-ttl').selectedOptions[0].textContent}${burn ? ', for one viewing' : ''}${hidden}.`);
      $('share-link').focus();
      this.#schedule();
    } catch (err) {
      this.#status('error', err.message);
    } finally {
      $('share-create').disabled = false;
    }
  }

  async #copy() {
    try {
      await navigator.clipboard.writeText($('share-link').value);
      this.#status('done', 'Link copied.');
    } catch {
      $('share-link').select();
      this.#status('done', 'Select the link and copy it (the browser did not allow copying).');
    }
  }

  async #delete() {
    const share = this.#share;
    if (!share) return;
    try {
      await relay(api(`/${encodeURIComponent(share.id)}`), {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${share.deleteToken}` },
      }, 'Could not delete the share');
      this.#share = null;
      $('share-result').hidden = true;
      this.#schedule();
      this.#status('done', 'Share deleted: the link no longer opens.');
      $('share-open').focus();
    } catch (err) {
      this.#status('error', err.message);
    }
  }

  /** Polls for replies while a share exists and the page is visible. */
  #schedule() {
    clearInterval(this.#poll);
    this.#poll = 0;
    if (this.#share && document.visibilityState !== 'hidden') {
      this.#poll = setInterval(() => this.#checkReplies(true), REPLY_POLL_MS);
    }
  }

  async #checkReplies(quiet = false) {
    const share = this.#share;
    if (!share || this.#checking) return;
    this.#checking = true;
    try {
      const replies = await fetchReplies(share.id);
      const { replies: opened } = await this.#bridge.ask({ type: 'reply-open', fragment: share.fragment, replies }, replies);
      if (share !== this.#share) return;
      showReplies($('share-replies'), opened);
      $('share-replies-title').textContent = opened.length ? `Replies (${opened.length})` : 'No replies yet';
      if (!quiet) this.#status('done', opened.length ? `${opened.length} replies.` : 'No replies yet.');
    } catch (err) {
      if (!quiet) this.#status('error', err.message);
    } finally {
      this.#checking = false;
    }
  }

  #status(state, text) {
    $('share').dataset.state = state;
    $('share-status').textContent = text;
  }
}

/** The reviewer's side: a shared session, read only, and the reply form. */
export class ReviewMode {
  #bridge;
  #link;
  #showDiagnosis;

  /** `showDiagnosis(diagnosis, columns, rows)` puts a shared diagnosis and its heat map on screen. */
  constructor(bridge, link, showDiagnosis) {
    this.#bridge = bridge;
    this.#link = link;
    this.#showDiagnosis = showDiagnosis;
    document.body.dataset.mode = 'review';
    $('review').hidden = false;
    $('review-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#reply();
    });
  }

  /** Fetches the share and opens it in the worker as file `id` (its `opened` goes to the viewer). */
  async open(id) {
    this.#state('loading', 'Opening the shared session…');
    let ciphertext;
    try {
      const response = await relay(api(`/${encodeURIComponent(this.#link.id)}`), { cache: 'no-store' }, 'Cannot open the shared session');
      ciphertext = await response.arrayBuffer();
    } catch (err) {
      this.#state('error', err.message);
      return;
    }
    try {
      const shared = await this.#bridge.ask({ type: 'share-open', id, fragment: this.#link.fragment, ciphertext }, [ciphertext]);
      $('review-note').textContent = shared.note || '(no note)';
      $('review-created').textContent = `Shared ${new Date(shared.created).toLocaleString()}`;
      const diagnosis = shared.diagnoses.find((d) => d.image === 0);
      if (diagnosis) this.#showDiagnosis(diagnosis, shared.columns, shared.rows);
      $('review-content').hidden = false;
      this.#state('open', 'Shared session — read only. Nothing here can be changed or shared again.');
    } catch (err) {
      this.#state('error', `Cannot open the shared session: ${err.message}`);
    }
  }

  async #reply() {
    const text = $('reply-text').value.trim();
    const opinion = document.querySelector('input[name="reply-opinion"]:checked')?.value ?? 'none';
    if (!text && opinion === 'none') {
      this.#replyStatus('error', 'Write a reply or choose an opinion first.');
      $('reply-text').focus();
      return;
    }
    $('reply-send').disabled = true;
    try {
      const sealed = await this.#bridge.ask({ type: 'reply-seal', fragment: this.#link.fragment, text, opinion, created: new Date().toISOString() });
      this.#replyStatus('busy', 'Sending…');
      await relay(api(`/${encodeURIComponent(this.#link.id)}/replies`), {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream' },
        body: sealed.ciphertext,
      }, 'Could not send the reply');
      this.#replyStatus('sent', 'Reply sent to the clinician.');
    } catch (err) {
      this.#replyStatus('error', `${err.message}`);
    } finally {
      $('reply-send').disabled = false;
    }
  }

  #state(state, text) {
    $('review').dataset.state = state;
    $('review-status').textContent = text;
  }

  #replyStatus(state, text) {
    $('review-form').dataset.state = state;
    $('reply-status').textContent = text;
  }
}
