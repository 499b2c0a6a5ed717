import { api, nav, el, toast, jobPanel, sse } from '/static/common.js';

nav('train');
jobPanel(document.getElementById('jobs'), (j) => j.kind === 'train');
const $ = (id) => document.getElementById(id);
let ST = null; let model = null; let previewMtime = null; let kinds = {}; let fixed = [];

const fmtTime = (s) => {
  if (s === null || s === undefined) return '–';
  s = Math.round(s);
  const h = Math.floor(s / 3600); const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
};

function chart(canvas, series, { log = false } = {}) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(200, canvas.clientWidth * ratio);
  canvas.height = Math.max(100, canvas.clientHeight * ratio);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  const W = canvas.width / ratio; const H = canvas.height / ratio;
  ctx.clearRect(0, 0, W, H);
  const pts = series.flatMap((s) => s.points);
  if (pts.length < 2) { ctx.fillStyle = '#8b91a3'; ctx.font = '13px sans-serif'; ctx.fillText('no data yet', 12, 24); return; }
  const tx = (v) => (log ? Math.log10(Math.max(v, 1e-9)) : v);
  const xs = pts.map((p) => p[0]); const ys = pts.map((p) => tx(p[1]));
  const x0 = Math.min(...xs); const x1 = Math.max(...xs); let y0 = Math.min(...ys); let y1 = Math.max(...ys);
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  const L = 46; const R = 8; const T = 8; const B = 20;
  const X = (v) => L + ((v - x0) / Math.max(1, x1 - x0)) * (W - L - R);
  const Y = (v) => T + (1 - (tx(v) - y0) / (y1 - y0)) * (H - T - B);
  ctx.strokeStyle = '#2e3240'; ctx.fillStyle = '#8b91a3'; ctx.font = '11px sans-serif';
  for (let i = 0; i <= 3; i++) {
    const yv = y0 + ((y1 - y0) * i) / 3; const yy = T + (1 - i / 3) * (H - T - B);
    ctx.beginPath(); ctx.moveTo(L, yy); ctx.lineTo(W - R, yy); ctx.stroke();
    ctx.fillText((log ? 10 ** yv : yv).toPrecision(3), 2, yy + 4);
  }
  ctx.fillText(String(x0), L, H - 5); ctx.fillText(String(x1), W - R - 40, H - 5);
  for (const s of series) {
    if (!s.points.length) continue;
    ctx.strokeStyle = s.color; ctx.lineWidth = 1.5; ctx.beginPath();
    s.points.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
    ctx.stroke();
  }
  let lx = L + 8;
  for (const s of series) { ctx.fillStyle = s.color; ctx.fillText(s.name, lx, T + 12); lx += ctx.measureText(s.name).width + 14; }
}

function optionInput(name, value, isFixed) {
  let input;
  if (typeof value === 'boolean') input = el('input', { type: 'checkbox', 'data-opt': name, ...(value ? { checked: true } : {}) });
  else input = el('input', { 'data-opt': name, value: String(value), type: typeof value === 'number' ? 'number' : 'text', step: 'any' });
  if (isFixed) input.disabled = true;
  return el('label', { class: isFixed ? 'fixed' : '', title: kinds[name] || '' }, el('span', {}, name), input);
}

function renderOptions(options, exists) {
  const box = $('opts');
  box.innerHTML = '';
  $('opts-title').textContent = exists ? 'Options (changeable on resume; architecture fixed)' : 'Options of the new model';
  for (const [k, v] of Object.entries(options)) {
    if (k === 'target_iter') continue;
    box.appendChild(optionInput(k, v, exists && fixed.includes(k)));
  }
}

function collectOptions(base) {
  const out = {};
  for (const input of $('opts').querySelectorAll('[data-opt]')) {
    if (input.disabled) continue;
    const k = input.dataset.opt; const old = base[k];
    const v = input.type === 'checkbox' ? input.checked : typeof old === 'number' ? Number(input.value) : input.value;
    if (v !== old) out[k] = v;
  }
  return out;
}

let presetOptions = null;
async function loadPreset() {
  presetOptions = await api(`/api/train/preset?name=${encodeURIComponent($('preset').value)}`);
  if (!ST || !ST.state || !ST.state.exists) renderOptions(presetOptions, false);
}

function renderState() {
  const s = ST.state;
  const st = $('status');
  st.innerHTML = '';
  const row = (k, v) => st.append(el('span', { class: 'muted' }, k), el('b', { 'data-stat': k }, v));
  if (!s) { row('model', 'none yet: name one above and press Start'); return; }
  const job = s.job;
  row('model', `${s.model}${s.exists ? '' : ' (new)'}`);
  if (s.exists) {
    row('architecture', `${s.options.arch} ${s.options.resolution}px ${s.options.face_type}`);
    row('iteration', `${s.iteration}${s.target_iter ? ` / ${s.target_iter}` : ''}`);
    row('speed', s.its_per_s ? `${s.its_per_s.toFixed(2)} it/s (${s.ms_per_iter.toFixed(0)} ms/it)` : '–');
    row('ETA to target', s.target_iter ? (s.iteration >= s.target_iter ? 'reached' : fmtTime(s.eta_s)) : 'no target_iter');
    row('identity', s.identity || '–');
    row('ETA to recognisable', s.identity_state === 'recognisable' ? 'reached'
      : s.identity_eta_s != null ? fmtTime(s.identity_eta_s)
        : s.identity_eta_iters ? `~${s.identity_eta_iters} iterations` : '–');
    row('plateau', s.plateau);
    row('last save', s.saved_at ? new Date(s.saved_at * 1000).toLocaleTimeString() : '–');
  }
  row('job', job ? `${job.state}${job.stopping ? ' (stopping: saving)' : ''} ${job.message || ''}` : 'not training');
  $('start').disabled = !!job;
  $('start').textContent = s.exists ? 'Resume' : 'Start';
  $('stop').disabled = !job;
  $('preset-box').hidden = s.exists;
  if (s.exists && document.activeElement !== $('target')) $('target').value = s.target_iter || '';
  $('preview').hidden = !s.preview;
  $('no-preview').hidden = !!s.preview;
  if (s.preview && s.preview_mtime !== previewMtime) {
    previewMtime = s.preview_mtime;
    const img = $('preview');
    img.src = `${s.preview}&t=${previewMtime}`;
    img.dataset.mtime = String(previewMtime);
    $('preview-info').textContent = `(iteration ${s.iteration}, ${new Date(previewMtime * 1000).toLocaleTimeString()})`;
  }
  if (s.exists) {
    chart($('loss'), [
      { name: 'src', color: '#5b9dff', points: s.losses.map((r) => [r.iter, r.src]) },
      { name: 'dst', color: '#f0b429', points: s.losses.map((r) => [r.iter, r.dst]) },
    ], { log: true });
    chart($('ident'), [
      { name: 'swap→src identity (distance)', color: '#3ecf8e', points: s.evals.filter((r) => r.id_swap_src !== undefined).map((r) => [r.iter, r.id_swap_src]) },
      { name: 'swap→dst', color: '#ff6b6b', points: s.evals.filter((r) => r.id_swap_dst !== undefined).map((r) => [r.iter, r.id_swap_dst]) },
    ]);
  }
}

let optionsShownFor = null;
async function refresh(name = model) {
  ST = await api('/api/train/state' + (name ? `?model=${encodeURIComponent(name)}` : ''));
  kinds = ST.option_kinds; fixed = ST.fixed;
  const sel = $('model');
  const known = ST.models.map((m) => m.name);
  sel.innerHTML = '';
  for (const m of ST.models) {
    const it = ST.state && ST.state.model === m.name && ST.state.exists ? ST.state.iteration : m.iteration;
    sel.appendChild(el('option', { value: m.name }, `${m.name} (iter ${it})`));
  }
  if (ST.state && !known.includes(ST.state.model)) sel.appendChild(el('option', { value: ST.state.model }, `${ST.state.model} (new)`));
  if (ST.state) { model = ST.state.model; sel.value = model; }
  if (!$('preset').children.length) {
    for (const p of ST.presets) $('preset').appendChild(el('option', { value: p }, p));
    $('preset').value = ST.recommended_preset || 'cpu';
  }
  const key = `${model}:${ST.state && ST.state.exists}`;
  if (optionsShownFor !== key) {
    optionsShownFor = key;
    if (ST.state && ST.state.exists) renderOptions(ST.state.options, true); else await loadPreset();
  }
  renderState();
}

$('model').addEventListener('change', () => { $('new-name').value = ''; previewMtime = null; refresh($('model').value); });
$('new-name').addEventListener('change', () => { const n = $('new-name').value.trim(); if (n) { previewMtime = null; refresh(n); } });
$('preset').addEventListener('change', loadPreset);
$('start').addEventListener('click', async () => {
  const s = ST.state;
  const name = (s && s.model) || $('new-name').value.trim();
  if (!name) { toast('name the model first', 'error'); return; }
  const base = s && s.exists ? s.options : presetOptions;
  const body = { model: name, options: collectOptions(base), preset: s && s.exists ? null : $('preset').value };
  const t = $('target').value; const mi = $('max-iters').value;
  if (t !== '') body.target_iter = Number(t);
  if (mi !== '') body.max_iters = Number(mi);
  try { await api('/api/train/start', { method: 'POST', json: body }); toast(`training ${name}`); refresh(name); } catch (e) { toast(e.message, 'error'); }
});
$('stop').addEventListener('click', async () => {
  const job = ST.state && ST.state.job;
  if (!job) return;
  try { await api(`/api/jobs/${job.id}/stop`, { method: 'POST' }); toast('stopping: the trainer saves first'); } catch (e) { toast(e.message, 'error'); }
});

// live: job events trigger a (throttled) state refresh; the preview image reloads only when the trainer
// wrote a new one (its mtime changed), so watching costs the trainer almost nothing
let last = 0; let timer = null;
function soon() {
  const wait = Math.max(0, 1500 - (Date.now() - last));
  clearTimeout(timer);
  timer = setTimeout(() => { last = Date.now(); refresh().catch(() => {}); }, wait);
}
sse('/api/jobs/events', (type, data) => { if (type === 'job' && data.kind === 'train') soon(); });
setInterval(() => refresh().catch(() => {}), 10000);
refresh().catch((e) => toast(e.message, 'error'));
