import { api, nav, el, toast, jobPanel, sse, fileUrl } from '/static/common.js';

nav('merge');
jobPanel(document.getElementById('jobs'), (j) => j.kind === 'merge' || j.kind === 'video');

const $ = (id) => document.getElementById(id);
const S = { model: null, frames: [], idx: 0, settings: {}, overrides: {}, schema: [], cur: {}, view: 'after', merged: new Set(), renders: 0 };

// DeepFaceLab's merger keys (InteractiveMergerSubprocessor): same letters, same meaning.
const MODES_BY_DIGIT = { '`': 'original', 1: 'overlay', 2: 'hist-match', 3: 'seamless', 4: 'seamless-hist-match', 5: 'raw-rgb', 6: 'raw-predict', 7: 'raw-mask' };
const STEP_KEYS = {
  q: ['hist_match_threshold', +1], a: ['hist_match_threshold', -1],
  w: ['erode', +1], s: ['erode', -1],
  e: ['blur', +1], d: ['blur', -1],
  r: ['motion_blur', +1], f: ['motion_blur', -1],
  t: ['color_degrade', +1], g: ['color_degrade', -1],
  y: ['sharpen_amount', +1], h: ['sharpen_amount', -1],
  u: ['output_face_scale', +1], j: ['output_face_scale', -1],
  i: ['image_denoise', +1], k: ['image_denoise', -1],
  o: ['bicubic_degrade', +1], l: ['bicubic_degrade', -1],
};
const CYCLE_KEYS = { x: 'mask_mode', c: 'color_transfer', n: 'sharpen_mode' };
const HELP = [
  ['` 1 2 3 4 5 6 7', 'mode: original, overlay, hist-match, seamless, seamless-hist-match, raw-rgb, raw-predict, raw-mask'],
  ['q / a', 'hist match threshold + / −'], ['w / s', 'erode mask + / −'], ['e / d', 'blur mask + / −'],
  ['r / f', 'motion blur + / −'], ['t / g', 'colour degrade + / −'], ['y / h', 'sharpen (blur) amount + / −'],
  ['u / j', 'output face scale + / −'], ['i / k', 'image denoise + / − (facecast)'], ['o / l', 'bicubic degrade + / − (facecast)'],
  ['z', 'toggle masked histogram match'], ['x', 'next mask mode'], ['c', 'next colour transfer'], ['n', 'next sharpen mode'],
  [', / .', 'previous / next frame'], ['m', 'previous frame, taking this frame\'s settings'],
  ['/', 'next frame, applying this frame\'s settings from here on'], ['Enter', 'merge all (background job)'],
  ['Tab', 'cycle view: after, before, split, mask'], ['? / Esc', 'this help / close'],
];

function effective(frame) { return { ...S.settings, ...(S.overrides[frame] || {}) }; }
const frame = () => S.frames[S.idx];

// -- controls ---------------------------------------------------------------------------------
function buildControls() {
  const box = $('controls');
  box.innerHTML = '';
  for (const f of S.schema) {
    let input; let out = null;
    if (f.kind === 'choice') {
      input = el('select', { id: `set-${f.name}` }, ...f.choices.map((c) => el('option', { value: c }, c)));
      input.addEventListener('change', () => change({ [f.name]: input.value }));
      box.appendChild(el('label', { class: 'bool', 'data-name': f.name }, el('span', {}, f.name), input));
    } else if (f.kind === 'bool') {
      input = el('input', { type: 'checkbox', id: `set-${f.name}` });
      input.addEventListener('change', () => change({ [f.name]: input.checked }));
      box.appendChild(el('label', { class: 'bool', 'data-name': f.name }, el('span', {}, f.name), input));
    } else {
      // sliders cover the useful part of the wide ranges; the number box takes any allowed value
      const [lo, hi] = f.name === 'erode' ? [-100, 100] : f.name === 'blur' ? [0, 200] : [f.min, f.max];
      input = el('input', { type: 'range', id: `set-${f.name}`, min: lo, max: hi, step: f.step });
      out = el('input', { type: 'number', id: `num-${f.name}`, min: f.min, max: f.max, step: f.step, style: 'width:56px' });
      input.addEventListener('input', () => { out.value = input.value; change({ [f.name]: Number(input.value) }); });
      out.addEventListener('change', () => change({ [f.name]: Number(out.value) }));
      box.appendChild(el('label', { 'data-name': f.name }, el('span', {}, f.name), input, out));
    }
  }
}

function showControls() {
  const ov = S.overrides[frame()] || {};
  for (const f of S.schema) {
    const v = S.cur[f.name];
    const input = $(`set-${f.name}`);
    if (f.kind === 'bool') input.checked = !!v; else input.value = v;
    const num = $(`num-${f.name}`);
    if (num) num.value = v;
    input.closest('label').querySelector('span').className = f.name in ov ? 'overridden' : '';
  }
  const keys = Object.keys(ov);
  $('override-note').hidden = !keys.length;
  $('override-note').textContent = keys.length ? `this frame overrides: ${keys.map((k) => `${k}=${ov[k]}`).join(', ')}` : '';
}

// -- rendering: only the latest request's image is shown; changes during a render queue one more ---
let inflight = false; let queued = false;
async function render() {
  if (!S.model || !S.frames.length) return;
  if (inflight) { queued = true; return; }
  inflight = true; queued = false;
  $('busy').hidden = false;
  const t0 = performance.now();
  const stage = document.querySelector('.stage');
  const maxWidth = Math.round(Math.min(3840, stage.clientWidth * (window.devicePixelRatio || 1)));
  const want = { model: S.model, frame: frame(), settings: { ...S.cur }, view: S.view, max_width: maxWidth };
  try {
    const resp = await api('/api/merge/preview', { method: 'POST', json: want, raw: true });
    const blob = await resp.blob();
    const img = $('frame');
    const old = img.src;
    img.src = URL.createObjectURL(blob);
    if (old && old.startsWith('blob:')) URL.revokeObjectURL(old);
    S.renders += 1;
    img.dataset.renders = String(S.renders);
    img.dataset.frame = want.frame;
    img.dataset.erode = String(want.settings.erode);
    $('render-info').textContent = `${resp.headers.get('X-Frame-Size')} · server ${resp.headers.get('X-Render-Ms')} ms · shown ${(performance.now() - t0).toFixed(0)} ms`;
  } catch (e) {
    toast(e.message, 'error');
  } finally {
    inflight = false;
    $('busy').hidden = true;
    if (queued) render();
  }
}

// -- saving (debounced): the merge session file holds what the page shows ------------------------
let pending = {}; let saveTimer = null;
function change(values) {
  Object.assign(S.cur, values);
  Object.assign(pending, values);
  showControls();
  render();
  clearTimeout(saveTimer);
  saveTimer = setTimeout(save, 250);
}
async function save(scope = $('scope').value) {
  clearTimeout(saveTimer);
  const values = pending; pending = {};
  if (!Object.keys(values).length && scope !== 'from') return;
  try {
    const r = await api('/api/merge/settings', { method: 'POST', json: { model: S.model, settings: values, scope, frame: frame() } });
    S.settings = r.settings; S.overrides = r.overrides;
    S.cur = effective(frame());
    showControls(); ticks();
    $('merge-progress').textContent = 'settings changed: the merged frames and result.mp4 predate them; Merge all redoes the frames they affect';
    document.body.dataset.saved = String(Number(document.body.dataset.saved || 0) + 1);
  } catch (e) { toast(e.message, 'error'); }
}

// -- frames -------------------------------------------------------------------------------------
async function go(i, carry = null) {
  if (Object.keys(pending).length) await save();
  S.idx = Math.max(0, Math.min(S.frames.length - 1, i));
  $('scrub').value = S.idx;
  $('frame-name').textContent = `${frame()} (${S.idx + 1}/${S.frames.length})${S.merged.has(frame()) ? ' · merged' : ''}`;
  if (carry) { // DFL's m: the previous frame takes the settings shown now
    const { __scope, ...values } = carry;
    pending = values;
    await save(__scope);
  }
  S.cur = effective(frame());
  showControls();
  render();
}

function ticks() {
  const box = $('ticks');
  box.innerHTML = '';
  const n = Math.max(1, S.frames.length - 1);
  if (S.frames.length > 3000) return; // a tick per frame stops helping (and costs) on long clips
  S.frames.forEach((f, i) => {
    if (S.overrides[f]) box.appendChild(el('span', { class: 'ov', style: `left:${(100 * i) / n}%`, title: `${f}: override` }));
    if (S.merged.has(f)) box.appendChild(el('span', { class: 'mg', style: `left:${(100 * i) / n}%` }));
  });
}

async function load(model) {
  const st = await api('/api/merge/state' + (model ? `?model=${encodeURIComponent(model)}` : ''));
  const sel = $('model');
  sel.innerHTML = '';
  for (const m of st.models) sel.appendChild(el('option', { value: m.name }, `${m.name} (iter ${m.iteration})`));
  if (!st.model) { $('render-info').textContent = 'no trained model yet: train one on the Train page'; return; }
  sel.value = st.model;
  Object.assign(S, { model: st.model, frames: st.frames, settings: st.settings, overrides: st.overrides, schema: st.schema, merged: new Set(st.merged) });
  $('scrub').max = Math.max(0, S.frames.length - 1);
  $('merge-progress').textContent = `merged ${st.progress.done}/${st.progress.total} frames (Merge all redoes only the frames whose settings changed)`;
  if (!$('controls').children.length) buildControls();
  ticks();
  if (st.result) showResult();
  await go(Math.min(S.idx, S.frames.length - 1));
}

function showResult() {
  $('result-panel').hidden = false;
  $('result').src = fileUrl('result.mp4');
}

// -- actions ------------------------------------------------------------------------------------
async function mergeAll() {
  if (Object.keys(pending).length) await save();
  try { const j = await api('/api/merge/run', { method: 'POST', json: { model: S.model } }); toast(`started: ${j.title}`); } catch (e) { toast(e.message, 'error'); }
}
async function makeVideo() {
  try { const j = await api('/api/merge/video', { method: 'POST' }); toast(`started: ${j.title}`); } catch (e) { toast(e.message, 'error'); }
}
function setView(v) {
  S.view = v;
  for (const b of $('views').querySelectorAll('button')) b.classList.toggle('active', b.dataset.view === v);
  render();
}

$('model').addEventListener('change', () => load($('model').value));
$('scrub').addEventListener('input', () => go(Number($('scrub').value)));
$('prev').addEventListener('click', () => go(S.idx - 1));
$('next').addEventListener('click', () => go(S.idx + 1));
$('views').addEventListener('click', (ev) => { if (ev.target.dataset.view) setView(ev.target.dataset.view); });
$('merge-all').addEventListener('click', mergeAll);
$('make-video').addEventListener('click', makeVideo);
$('apply-from').addEventListener('click', async () => { pending = { ...S.cur }; await save('from'); toast(`settings applied from ${frame()} on`); });
$('clear-override').addEventListener('click', async () => {
  try {
    const r = await api('/api/merge/override/clear', { method: 'POST', json: { model: S.model, frame: frame() } });
    S.settings = r.settings; S.overrides = r.overrides; S.cur = effective(frame()); showControls(); ticks(); render();
  } catch (e) { toast(e.message, 'error'); }
});
$('help-btn').addEventListener('click', () => { $('help').hidden = !$('help').hidden; });
$('keys').append(...HELP.map(([k, v]) => el('tr', {}, el('td', {}, el('kbd', {}, k)), el('td', {}, v))));

function clampSetting(name, value) {
  const f = S.schema.find((x) => x.name === name);
  return Math.max(f.min, Math.min(f.max, value));
}

document.addEventListener('keydown', (ev) => {
  if (ev.target.matches('input[type=number], input[type=text], select') || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
  const big = ev.shiftKey ? 5 : 1;
  let handled = true;
  if (key === '?' || (ev.shiftKey && ev.key === '/' && ev.code !== 'Slash')) $('help').hidden = !$('help').hidden;
  else if (key === 'Escape') $('help').hidden = true;
  else if (key in MODES_BY_DIGIT && !ev.shiftKey) change({ mode: MODES_BY_DIGIT[key] });
  else if (key in STEP_KEYS) { const [name, d] = STEP_KEYS[key]; change({ [name]: clampSetting(name, S.cur[name] + d * big) }); }
  else if (key in CYCLE_KEYS) {
    const name = CYCLE_KEYS[key]; const f = S.schema.find((x) => x.name === name);
    change({ [name]: f.choices[(f.choices.indexOf(S.cur[name]) + 1) % f.choices.length] });
  } else if (key === 'z') change({ masked_hist_match: !S.cur.masked_hist_match });
  else if (key === ',') go(S.idx - 1);
  else if (key === '.') go(S.idx + 1);
  else if (key === 'm') go(S.idx - 1, { ...S.cur, __scope: 'frame' });
  else if (key === '/' && !ev.shiftKey) { const here = S.cur; pending = { ...here }; save('from').then(() => go(S.idx + 1)); }
  else if (key === 'Enter') mergeAll();
  else if (key === 'Tab') { const vs = ['after', 'before', 'split', 'mask']; setView(vs[(vs.indexOf(S.view) + 1) % vs.length]); }
  else handled = false;
  if (handled) ev.preventDefault();
});

sse('/api/jobs/events', (type, data) => {
  if (type === 'job' && (data.kind === 'merge' || data.kind === 'video') && ['done', 'stopped', 'failed'].includes(data.state)) {
    load(S.model);
    if (data.kind === 'video' && data.state === 'done') showResult();
  }
});

load().catch((e) => toast(e.message, 'error'));
