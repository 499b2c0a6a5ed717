// Masks page (the XSeg editor): include/exclude polygons on an aligned face, with DeepFaceLab's XSeg
// editor keys, the segmenter's mask as an overlay, and XSeg training started from here. Polygons are in
// aligned-face pixels, in drawing order (each paints over the previous), as masks/polygons.py stores them.
import { api, nav, toast, jobPanel, sse, loadImage } from '/static/common.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const canvas = $('canvas');
const ctx = canvas.getContext('2d');
const wrap = $('wrap');
const HIT = 7;
const PAGE = 500;
const SCHEMES = [ // [include, exclude] colours, keys 1-3
  ['#3ecf8e', '#ff5050'], ['#40c0ff', '#ffb020'], ['#ffffff', '#ff40ff'],
];

const st = {
  side: params.get('side') === 'src' ? 'src' : 'dst',
  total: 0,
  pages: new Map(),
  index: 0,
  name: null,
  face: null, // {size, polygons, ...}
  img: null,
  polys: [],
  cur: null, // unfinished polygon {type, points}
  mode: 'include',
  scheme: 0,
  view: 'polys',
  mask: null, // ImageData of the xseg mask at face size
  maskKey: '',
  mouse: null, // face px
  drag: null,
  undo: [],
  redo: [],
  dirty: false,
  labelled: new Set(),
  v: { s: 1, ox: 0, oy: 0 },
};

// -- face list -----------------------------------------------------------------------------------------
async function page(p) {
  if (!st.pages.has(p)) {
    const d = await api(`/api/faces/${st.side}/list?offset=${p * PAGE}&limit=${PAGE}`);
    st.total = d.total;
    st.pages.set(p, d.items);
  }
  return st.pages.get(p);
}
async function nameAt(i) { const items = await page(Math.floor(i / PAGE)); const it = items[i % PAGE]; return it && it.name; }

// -- view ----------------------------------------------------------------------------------------------
const toScreen = ([x, y]) => [x * st.v.s + st.v.ox, y * st.v.s + st.v.oy];
const toFace = (sx, sy) => [(sx - st.v.ox) / st.v.s, (sy - st.v.oy) / st.v.s];

function fit() {
  if (!st.face) return;
  const w = wrap.clientWidth, h = wrap.clientHeight;
  const s = Math.min(w, h) / st.face.size * 0.96;
  st.v = { s, ox: (w - st.face.size * s) / 2, oy: (h - st.face.size * s) / 2 };
  draw();
}

function bakedMask() {
  const n = st.face.size;
  const off = document.createElement('canvas');
  off.width = off.height = n;
  const c = off.getContext('2d');
  c.fillStyle = '#000';
  c.fillRect(0, 0, n, n);
  for (const p of st.polys) {
    c.fillStyle = p.type === 'include' ? '#fff' : '#000';
    c.beginPath();
    p.points.forEach(([x, y], i) => (i ? c.lineTo(x, y) : c.moveTo(x, y)));
    c.closePath();
    c.fill();
  }
  return off;
}

function maskCanvas(overlay) {
  const n = st.face.size;
  const off = document.createElement('canvas');
  off.width = off.height = n;
  const c = off.getContext('2d');
  if (!st.mask) return null;
  if (!overlay) { c.putImageData(st.mask, 0, 0); return off; }
  c.drawImage(st.img, 0, 0, n, n);
  const face = c.getImageData(0, 0, n, n);
  for (let i = 0; i < face.data.length; i += 4) {
    if (st.mask.data[i] < 128) { // outside the mask: tinted red, as `xseg preview` shows it
      face.data[i] = face.data[i] * 0.35 + 160 * 0.65;
      face.data[i + 1] *= 0.35;
      face.data[i + 2] *= 0.35;
    }
  }
  c.putImageData(face, 0, 0);
  return off;
}

function draw() {
  canvas.width = wrap.clientWidth;
  canvas.height = wrap.clientHeight;
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!st.img) return;
  const n = st.face.size;
  const [x0, y0] = toScreen([0, 0]);
  const d = n * st.v.s;
  let base = st.img;
  if (st.view === 'baked') base = bakedMask();
  else if (st.view === 'xseg' || st.view === 'overlay') base = maskCanvas(st.view === 'overlay') || st.img;
  ctx.imageSmoothingEnabled = st.v.s < 4;
  ctx.drawImage(base, x0, y0, d, d);
  const [inc, exc] = SCHEMES[st.scheme];
  const polys = st.cur ? [...st.polys, st.cur] : st.polys;
  polys.forEach((p) => {
    const open = p === st.cur;
    const col = p.type === 'include' ? inc : exc;
    ctx.strokeStyle = col;
    ctx.lineWidth = 2;
    ctx.beginPath();
    p.points.forEach((pt, i) => { const [x, y] = toScreen(pt); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
    if (open && st.mouse) { const [x, y] = toScreen(st.mouse); ctx.lineTo(x, y); }
    if (!open) ctx.closePath();
    if (!open && st.view === 'polys') { ctx.fillStyle = col + '33'; ctx.fill(); }
    ctx.stroke();
    p.points.forEach((pt, i) => {
      const [x, y] = toScreen(pt);
      ctx.fillStyle = open && i === 0 ? '#ffff00' : col;
      ctx.fillRect(x - 3, y - 3, 6, 6);
    });
  });
}

// -- editing -------------------------------------------------------------------------------------------
const snap = () => JSON.stringify({ polys: st.polys, cur: st.cur });
function push() { st.undo.push(snap()); st.redo = []; if (st.undo.length > 200) st.undo.shift(); }
function restore(s) { const o = JSON.parse(s); st.polys = o.polys; st.cur = o.cur; }
function changed() { st.dirty = true; status(); draw(); }

function nearestPoint(sx, sy, includeCur = false) {
  let best = null, bd = HIT;
  const list = includeCur && st.cur ? [...st.polys, st.cur] : st.polys;
  list.forEach((p, pi) => p.points.forEach((pt, k) => {
    const [x, y] = toScreen(pt);
    const dd = Math.hypot(x - sx, y - sy);
    if (dd < bd) { bd = dd; best = { poly: p === st.cur ? -1 : pi, k }; }
  }));
  return best;
}

function pointInPoly([x, y], pts) {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i], [xj, yj] = pts[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function closeCur() {
  if (!st.cur) return;
  push();
  if (st.cur.points.length >= 3) st.polys.push(st.cur);
  st.cur = null;
  changed();
}

const pos = (ev) => { const r = canvas.getBoundingClientRect(); return [ev.clientX - r.left, ev.clientY - r.top]; };

canvas.addEventListener('mousedown', (ev) => {
  if (!st.face || ev.button !== 0) return;
  const [sx, sy] = pos(ev);
  const p = toFace(sx, sy);
  if (st.cur) {
    const [fx, fy] = toScreen(st.cur.points[0]);
    if (st.cur.points.length >= 3 && Math.hypot(fx - sx, fy - sy) < HIT + 2) { closeCur(); return; }
    push();
    st.cur.points.push(p);
    changed();
    return;
  }
  const hit = nearestPoint(sx, sy);
  if (hit) { push(); st.drag = hit; return; }
  push();
  st.cur = { type: st.mode, points: [p] };
  changed();
});

canvas.addEventListener('mousemove', (ev) => {
  const [sx, sy] = pos(ev);
  st.mouse = toFace(sx, sy);
  if (st.drag) {
    st.polys[st.drag.poly].points[st.drag.k] = st.mouse;
    st.dirty = true;
  }
  if (st.cur || st.drag) draw();
});
window.addEventListener('mouseup', () => { if (st.drag) { st.drag = null; changed(); } });

canvas.addEventListener('contextmenu', (ev) => {
  ev.preventDefault();
  const [sx, sy] = pos(ev);
  const hit = nearestPoint(sx, sy, true);
  if (!hit) return;
  push();
  const poly = hit.poly === -1 ? st.cur : st.polys[hit.poly];
  poly.points.splice(hit.k, 1);
  if (hit.poly >= 0 && poly.points.length < 3) st.polys.splice(hit.poly, 1);
  if (hit.poly === -1 && !poly.points.length) st.cur = null;
  changed();
});

wrap.addEventListener('wheel', (ev) => {
  if (!st.face) return;
  ev.preventDefault();
  const [sx, sy] = pos(ev);
  const [fx, fy] = toFace(sx, sy);
  st.v.s = Math.min(60, Math.max(0.1, st.v.s * Math.exp(-ev.deltaY * 0.0015)));
  st.v.ox = sx - fx * st.v.s;
  st.v.oy = sy - fy * st.v.s;
  draw();
}, { passive: false });
canvas.addEventListener('dblclick', (ev) => { if (!st.cur) fit(); ev.preventDefault(); });

function undo() { if (!st.undo.length) return; st.redo.push(snap()); restore(st.undo.pop()); changed(); }
function redo() { if (!st.redo.length) return; st.undo.push(snap()); restore(st.redo.pop()); changed(); }

function deletePoly() {
  if (st.cur) { push(); st.cur = null; changed(); return; }
  if (!st.polys.length) return;
  let i = st.polys.length - 1;
  if (st.mouse) {
    for (let k = st.polys.length - 1; k >= 0; k--) if (pointInPoly(st.mouse, st.polys[k].points)) { i = k; break; }
  }
  push();
  st.polys.splice(i, 1);
  changed();
}

async function copyPrev() {
  if (st.index === 0) { toast('No previous face'); return; }
  const prev = await nameAt(st.index - 1);
  const f = await api(`/api/masks/${st.side}/face/${encodeURIComponent(prev)}`);
  if (!f.polygons.length) { toast(`${prev} has no polygons`); return; }
  const k = st.face.size / f.size;
  push();
  st.polys = st.polys.concat(f.polygons.map((p) => ({ type: p.type, points: p.points.map(([x, y]) => [x * k, y * k]) })));
  changed();
  toast(`${f.polygons.length} polygon(s) copied from ${prev}`);
}

function setMode(m) {
  st.mode = m;
  $('mode-include').classList.toggle('on', m === 'include');
  $('mode-exclude').classList.toggle('on', m === 'exclude');
  if (st.cur) { st.cur.type = m; draw(); }
}

async function setView(v) {
  st.view = v;
  $('view').value = v;
  if (v === 'xseg' || v === 'overlay') await loadMask();
  draw();
}

// -- xseg mask -----------------------------------------------------------------------------------------
async function loadMask() {
  const model = $('model').value;
  const key = `${st.name}|${model}|${st.face && st.face.version}`;
  if (st.maskKey === key) return;
  st.mask = null;
  st.maskKey = key;
  try {
    const q = model ? `?model=${encodeURIComponent(model)}` : '';
    const resp = await api(`/api/masks/${st.side}/mask/${encodeURIComponent(st.name)}${q}`, { raw: true });
    const bmp = await createImageBitmap(await resp.blob());
    const n = st.face.size;
    const off = document.createElement('canvas');
    off.width = off.height = n;
    const c = off.getContext('2d');
    c.drawImage(bmp, 0, 0, n, n);
    if (st.maskKey === key) st.mask = c.getImageData(0, 0, n, n);
  } catch (e) { st.maskKey = ''; toast(e.message, 'error'); }
}

// -- load / save / navigate ----------------------------------------------------------------------------
async function save() {
  if (!st.name) return true;
  if (st.cur && st.cur.points.length >= 3) closeCur();
  try {
    const r = await api(`/api/masks/${st.side}/save`, { method: 'POST', json: { name: st.name, polygons: st.polys } });
    st.dirty = false;
    if (r.polygons) st.labelled.add(st.name); else st.labelled.delete(st.name);
    if (st.face) st.face.version = r.version;
    status();
    renderStrip();
    document.body.dataset.saved = String(Date.now());
    return true;
  } catch (e) { toast(e.message, 'error'); return false; }
}

async function open(i) {
  if (i < 0 || i >= st.total) return;
  if (st.dirty && !(await save())) return;
  const name = await nameAt(i);
  st.index = i;
  st.name = name;
  document.body.dataset.ready = '';
  const face = await api(`/api/masks/${st.side}/face/${encodeURIComponent(name)}`);
  const img = await loadImage(`/api/faces/${st.side}/image/${encodeURIComponent(name)}?v=${face.version}`);
  if (st.name !== name) return;
  st.face = face;
  st.img = img;
  st.polys = face.polygons.map((p) => ({ type: p.type, points: p.points }));
  st.cur = null;
  st.undo = [];
  st.redo = [];
  st.dirty = false;
  st.maskKey = '';
  if (st.view === 'xseg' || st.view === 'overlay') await loadMask();
  $('face-name').textContent = name;
  $('pos').textContent = `${i + 1} / ${st.total}`;
  history.replaceState(null, '', `?side=${st.side}&face=${encodeURIComponent(name)}`);
  fit();
  status();
  renderStrip();
  document.body.dataset.ready = '1';
}

async function step(delta, labelledOnly) {
  if (!labelledOnly) return open(Math.max(0, Math.min(st.total - 1, st.index + delta)));
  for (let i = st.index + Math.sign(delta); i >= 0 && i < st.total; i += Math.sign(delta)) {
    if (st.labelled.has(await nameAt(i))) return open(i);
  }
  toast('No more labelled faces that way');
}

async function renderStrip() {
  const strip = $('strip');
  strip.innerHTML = '';
  const n = Math.max(1, Math.floor(strip.clientWidth / 64));
  const start = Math.max(0, Math.min(st.index - Math.floor(n / 2), st.total - n));
  for (let i = start; i < Math.min(st.total, start + n); i++) {
    const items = await page(Math.floor(i / PAGE));
    const it = items[i % PAGE];
    const img = document.createElement('img');
    img.src = `/api/faces/${st.side}/thumb/${encodeURIComponent(it.name)}?v=${it.v}`;
    img.title = it.name;
    if (i === st.index) img.className = 'cur';
    if (st.labelled.has(it.name)) img.classList.add('lab');
    img.onclick = () => open(i);
    strip.appendChild(img);
  }
}

function status() {
  const parts = [`${st.polys.length} polygon${st.polys.length === 1 ? '' : 's'}`];
  if (st.cur) parts.push(`drawing ${st.cur.type} (${st.cur.points.length} pts)`);
  if (st.dirty) parts.push('unsaved');
  $('status').textContent = parts.join(' · ');
  $('labelled').textContent = `${st.labelled.size} labelled face${st.labelled.size === 1 ? '' : 's'}`;
}

document.addEventListener('keydown', (ev) => {
  if ((ev.target.tagName === 'INPUT' && ev.target.type !== 'checkbox') || ev.target.tagName === 'SELECT') return;
  const k = ev.key.toLowerCase();
  const ctrl = ev.ctrlKey || ev.metaKey;
  if (ctrl && k === 'z') { ev.preventDefault(); ev.shiftKey ? redo() : undo(); }
  else if (ctrl && k === 's') { ev.preventDefault(); save(); }
  else if (k === 'q') setMode('include');
  else if (k === 'w') setMode('exclude');
  else if (k === 'enter') closeCur();
  else if (k === 'escape') { if (st.cur) { push(); st.cur = null; changed(); } }
  else if (k === 'delete' || k === 'backspace') { ev.preventDefault(); deletePoly(); }
  else if (k === 'a') { if (ctrl) ev.preventDefault(); step(ev.shiftKey ? -5 : -1, ctrl); }
  else if (k === 'd') { if (ctrl) ev.preventDefault(); step(ev.shiftKey ? 5 : 1, ctrl); }
  else if (k === 'c' && !ctrl) copyPrev();
  else if (k === 's') save();
  else if (['1', '2', '3'].includes(k)) { st.scheme = Number(k) - 1; setView('polys'); }
  else if (k === '4') setView('baked');
  else if (k === '5') setView('xseg');
  else if (k === '6') setView('overlay');
});

// -- training ------------------------------------------------------------------------------------------
function refreshPreview() {
  const model = $('train-model').value.trim();
  if (!model) return;
  const img = $('preview');
  const probe = new Image();
  probe.onload = () => { img.src = probe.src; img.hidden = false; $('preview-none').hidden = true; document.body.dataset.preview = String(Date.now()); };
  probe.src = `/api/masks/preview/${encodeURIComponent(model)}?t=${Date.now()}`;
}

async function startTraining() {
  if (st.dirty) await save();
  try {
    const body = {
      model: $('train-model').value.trim() || 'xseg', phase: $('train-phase').value,
      target_iter: Number($('train-iter').value), save_every: Number($('train-every').value),
      preset: $('train-preset').value || null,
    };
    const job = await api('/api/masks/train', { method: 'POST', json: body });
    toast(`${job.title}: started`);
  } catch (e) { toast(e.message, 'error'); }
}

async function loadModels() {
  const { models } = await api('/api/masks/models');
  $('model').innerHTML = '<option value="">stored mask</option>' +
    models.map((m) => `<option value="${m.name}">${m.name} (${m.resolution}px, it ${Object.values(m.iterations).reduce((a, b) => a + b, 0)})</option>`).join('');
  if (models.length) {
    $('model').value = models[0].name;
    $('train-model').value = models[0].name;
  }
}

async function init() {
  nav('masks');
  $('side').value = st.side;
  setMode('include');
  jobPanel($('jobs'), (j) => j.kind.startsWith('xseg'));
  let lastPreview = 0;
  sse('/api/jobs/events', (type, data) => {
    if (type !== 'job' || !data.kind || !data.kind.startsWith('xseg')) return;
    const now = Date.now();
    if (now - lastPreview > 1500 || !['queued', 'running'].includes(data.state)) { lastPreview = now; refreshPreview(); }
    if (data.state === 'done') { st.maskKey = ''; loadModels().then(() => { if (st.view !== 'polys') setView(st.view); }); }
  });
  $('side').onchange = async () => {
    if (st.dirty) await save();
    st.side = $('side').value; st.pages.clear(); await start(null);
  };
  $('prev').onclick = () => step(-1, false);
  $('next').onclick = () => step(1, false);
  $('mode-include').onclick = () => setMode('include');
  $('mode-exclude').onclick = () => setMode('exclude');
  $('undo').onclick = undo;
  $('redo').onclick = redo;
  $('del-poly').onclick = deletePoly;
  $('copy-prev').onclick = copyPrev;
  $('save').onclick = save;
  $('view').onchange = () => { $('view').blur(); setView($('view').value); };
  $('model').onchange = () => { $('model').blur(); st.maskKey = ''; if (st.view !== 'polys') setView(st.view); };
  $('train').onclick = startTraining;
  $('train-model').onchange = refreshPreview;
  window.addEventListener('resize', fit);
  window.addEventListener('beforeunload', () => { if (st.dirty) save(); });
  await loadModels().catch(() => {});
  refreshPreview();
  await start(params.get('face'));
}

async function start(want) {
  await page(0);
  // which faces carry labels: the first call reads every face's metadata (seconds on a big set), so
  // the editor opens without waiting for it
  st.labelled = new Set();
  const side = st.side;
  api(`/api/masks/${side}/labelled`).then((lab) => {
    if (side !== st.side) return;
    for (const n of lab.names) st.labelled.add(n);
    status();
    renderStrip();
  }).catch((e) => toast(e.message, 'error'));
  if (!st.total) { $('status').textContent = `no faces in data_${st.side}/aligned`; document.body.dataset.ready = '1'; return; }
  let i = 0;
  if (want) {
    for (let p = 0; p * PAGE < st.total; p++) {
      const k = (await page(p)).findIndex((it) => it.name === want);
      if (k >= 0) { i = p * PAGE + k; break; }
    }
  }
  await open(i);
}

// test hook: read-only view of the editor state and its coordinate mapping
window.masks = { state: st, toScreen, save };
init().catch((e) => toast(e.message, 'error'));
