// Fix a frame (manual re-extract): draw or drag the face box, drag any of the 68 landmarks or re-detect
// them inside the box, watch the aligned face update, save. The server aligns and writes exactly as
// `facecast extract` does (faces/manual.py); this page only edits points in frame pixels.
import { api, nav, toast, loadImage } from '/static/common.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const canvas = $('canvas');
const ctx = canvas.getContext('2d');
const wrap = $('wrap');
const HIT_PT = 7; // screen px
const HIT_CORNER = 9;
// 68-point groups drawn as lines (jaw, brows, nose, eyes, lips)
const GROUPS = [[0, 16, false], [17, 21, false], [22, 26, false], [27, 30, false], [31, 35, false],
  [36, 41, true], [42, 47, true], [48, 59, true], [60, 67, true]];

const st = {
  side: params.get('side') === 'src' ? 'src' : 'dst',
  list: [], // [{frame, reasons}]
  index: -1,
  frame: null, // current frame name
  img: null,
  info: null, // server's view of the saved face
  rect: null, // [x0, y0, x1, y1] frame px
  lm: null, // [[x, y] * 68] frame px
  view: { s: 1, ox: 0, oy: 0 },
  drag: null,
  undo: [],
  dirty: false,
  preview: { busy: false, again: false, url: null },
};

// -- view ----------------------------------------------------------------------------------------------
const toScreen = ([x, y]) => [x * st.view.s + st.view.ox, y * st.view.s + st.view.oy];
const toFrame = (sx, sy) => [(sx - st.view.ox) / st.view.s, (sy - st.view.oy) / st.view.s];

function fit() {
  if (!st.img) return;
  const w = wrap.clientWidth, h = wrap.clientHeight;
  const s = Math.min(w / st.img.naturalWidth, h / st.img.naturalHeight);
  st.view = { s, ox: (w - st.img.naturalWidth * s) / 2, oy: (h - st.img.naturalHeight * s) / 2 };
  draw();
}

function draw() {
  canvas.width = wrap.clientWidth;
  canvas.height = wrap.clientHeight;
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!st.img) return;
  const { s, ox, oy } = st.view;
  ctx.imageSmoothingEnabled = s < 2;
  ctx.drawImage(st.img, ox, oy, st.img.naturalWidth * s, st.img.naturalHeight * s);
  if (st.rect) {
    const [a, b] = [toScreen([st.rect[0], st.rect[1]]), toScreen([st.rect[2], st.rect[3]])];
    ctx.lineWidth = 2;
    ctx.strokeStyle = st.dirty || (st.info && st.info.origin === 'manual') ? '#ff40ff' : (st.info && st.info.interpolated ? '#ffdc00' : '#00ff00');
    ctx.strokeRect(a[0], a[1], b[0] - a[0], b[1] - a[1]);
    ctx.fillStyle = ctx.strokeStyle;
    for (const [cx, cy] of [a, b, [a[0], b[1]], [b[0], a[1]]]) ctx.fillRect(cx - 4, cy - 4, 8, 8);
  }
  if (st.lm) {
    ctx.lineWidth = 1;
    ctx.strokeStyle = '#40c0ff';
    for (const [i, j, closed] of GROUPS) {
      ctx.beginPath();
      for (let k = i; k <= j; k++) { const [x, y] = toScreen(st.lm[k]); k === i ? ctx.moveTo(x, y) : ctx.lineTo(x, y); }
      if (closed) ctx.closePath();
      ctx.stroke();
    }
    st.lm.forEach((p, k) => {
      const [x, y] = toScreen(p);
      ctx.beginPath();
      ctx.arc(x, y, st.drag && st.drag.kind === 'point' && st.drag.k === k ? 5 : 3, 0, 2 * Math.PI);
      ctx.fillStyle = st.drag && st.drag.k === k ? '#ffff00' : '#ff4040';
      ctx.fill();
    });
  }
}

// -- editing -------------------------------------------------------------------------------------------
function snapshot() { st.undo.push(JSON.stringify({ rect: st.rect, lm: st.lm })); if (st.undo.length > 100) st.undo.shift(); }

function hit(sx, sy) {
  if (st.lm) {
    let best = null, bd = HIT_PT;
    st.lm.forEach((p, k) => { const [x, y] = toScreen(p); const d = Math.hypot(x - sx, y - sy); if (d < bd) { bd = d; best = k; } });
    if (best !== null) return { kind: 'point', k: best };
  }
  if (st.rect) {
    const [x0, y0] = toScreen([st.rect[0], st.rect[1]]);
    const [x1, y1] = toScreen([st.rect[2], st.rect[3]]);
    const corners = [[x0, y0, 0, 1], [x1, y0, 2, 1], [x0, y1, 0, 3], [x1, y1, 2, 3]];
    for (const [cx, cy, ix, iy] of corners) if (Math.hypot(cx - sx, cy - sy) < HIT_CORNER) return { kind: 'corner', ix, iy };
    if (sx > x0 && sx < x1 && sy > y0 && sy < y1) return { kind: 'move' };
  }
  return { kind: 'new' };
}

canvas.addEventListener('mousedown', (ev) => {
  if (!st.img || ev.button !== 0) return;
  const r = canvas.getBoundingClientRect();
  const sx = ev.clientX - r.left, sy = ev.clientY - r.top;
  const h = ev.shiftKey ? { kind: 'new' } : hit(sx, sy);
  snapshot();
  st.drag = { ...h, start: toFrame(sx, sy), rect0: st.rect && [...st.rect], lm0: st.lm && st.lm.map((p) => [...p]), moved: false };
  if (h.kind === 'new') st.drag.anchor = toFrame(sx, sy);
  ev.preventDefault();
});

window.addEventListener('mousemove', (ev) => {
  const d = st.drag;
  if (!d) return;
  const r = canvas.getBoundingClientRect();
  const [fx, fy] = toFrame(ev.clientX - r.left, ev.clientY - r.top);
  const dx = fx - d.start[0], dy = fy - d.start[1];
  if (!d.moved && Math.hypot(dx, dy) * st.view.s < 2) return;
  d.moved = true;
  if (d.kind === 'point') {
    st.lm[d.k] = [d.lm0[d.k][0] + dx, d.lm0[d.k][1] + dy];
    requestPreview();
  } else if (d.kind === 'move') {
    st.rect = [d.rect0[0] + dx, d.rect0[1] + dy, d.rect0[2] + dx, d.rect0[3] + dy];
    if (d.lm0) { st.lm = d.lm0.map(([x, y]) => [x + dx, y + dy]); requestPreview(); }
  } else if (d.kind === 'corner') {
    const rc = [...d.rect0];
    rc[d.ix] = d.rect0[d.ix] + dx;
    rc[d.iy] = d.rect0[d.iy] + dy;
    st.rect = [Math.min(rc[0], rc[2]), Math.min(rc[1], rc[3]), Math.max(rc[0], rc[2]), Math.max(rc[1], rc[3])];
  } else if (d.kind === 'new') {
    const [ax, ay] = d.anchor;
    st.rect = [Math.min(ax, fx), Math.min(ay, fy), Math.max(ax, fx), Math.max(ay, fy)];
  }
  st.dirty = true;
  status();
  draw();
});

window.addEventListener('mouseup', async () => {
  const d = st.drag;
  st.drag = null;
  if (!d) return;
  if (!d.moved) { st.undo.pop(); draw(); return; }
  draw();
  if ((d.kind === 'new' || d.kind === 'corner') && $('auto-detect').checked) await detect();
});

wrap.addEventListener('wheel', (ev) => {
  if (!st.img) return;
  ev.preventDefault();
  const r = canvas.getBoundingClientRect();
  const sx = ev.clientX - r.left, sy = ev.clientY - r.top;
  const [fx, fy] = toFrame(sx, sy);
  const k = Math.exp(-ev.deltaY * 0.0015);
  st.view.s = Math.min(40, Math.max(0.05, st.view.s * k));
  st.view.ox = sx - fx * st.view.s;
  st.view.oy = sy - fy * st.view.s;
  draw();
}, { passive: false });
canvas.addEventListener('dblclick', fit);

async function detect() {
  if (!st.rect) { toast('Draw a face box first'); return; }
  const w = st.rect[2] - st.rect[0], h = st.rect[3] - st.rect[1];
  if (w < 4 || h < 4) return;
  try {
    const r = await api(`/api/fixframe/${st.side}/detect`, { method: 'POST', json: { frame: st.frame, rect: st.rect } });
    if (!st.lm) snapshot();
    st.lm = r.landmarks;
    st.dirty = true;
    status();
    draw();
    requestPreview();
  } catch (e) { toast(e.message, 'error'); }
}

async function requestPreview() {
  if (!st.lm) return;
  if (st.preview.busy) { st.preview.again = true; return; }
  st.preview.busy = true;
  try {
    const frame = st.frame;
    const resp = await api(`/api/fixframe/${st.side}/preview`, { method: 'POST', json: { frame, landmarks: st.lm }, raw: true });
    const blob = await resp.blob();
    if (frame === st.frame) {
      if (st.preview.url) URL.revokeObjectURL(st.preview.url);
      st.preview.url = URL.createObjectURL(blob);
      $('aligned').src = st.preview.url;
    }
  } catch (e) { toast(e.message, 'error'); }
  st.preview.busy = false;
  if (st.preview.again) { st.preview.again = false; requestPreview(); }
}

async function save() {
  if (!st.lm) { toast('No landmarks to save: draw a box (and detect) first'); return false; }
  try {
    const r = await api(`/api/fixframe/${st.side}/save`, { method: 'POST', json: { frame: st.frame, landmarks: st.lm, rect: st.rect } });
    toast(`${st.frame}: saved as ${r.face}`);
    st.dirty = false;
    st.info = { ...(st.info || {}), origin: 'manual', face: r.face, rect: st.rect, landmarks: st.lm, interpolated: false };
    const entry = st.list[st.index];
    if (entry) entry.fixed = true;
    renderList();
    status();
    draw();
    document.body.dataset.saved = String(Date.now());
    return true;
  } catch (e) { toast(e.message, 'error'); return false; }
}

function status() {
  const parts = [];
  if (st.info) {
    parts.push(st.info.face ? `face ${st.info.face} (${st.info.origin})` : 'no face yet');
    if (st.info.interpolated) parts.push('interpolated');
  }
  if (st.dirty) parts.push('unsaved changes');
  $('frame-status').textContent = parts.join(' · ');
  $('frame-name').textContent = st.frame || '–';
}

// -- frames and the queue ------------------------------------------------------------------------------
async function openFrame(name) {
  st.frame = name;
  st.undo = [];
  st.dirty = false;
  document.body.dataset.ready = '';
  const [img, info] = await Promise.all([
    loadImage(`/api/fixframe/${st.side}/frame/${encodeURIComponent(name)}?t=${Date.now()}`),
    api(`/api/fixframe/${st.side}/face/${encodeURIComponent(name)}`),
  ]);
  if (st.frame !== name) return;
  st.img = img;
  st.info = info;
  st.rect = info.rect;
  st.lm = info.landmarks;
  $('aligned-info').textContent = `${info.face_type} ${info.face_size}px` + (info.score != null ? ` · detector score ${Number(info.score).toFixed(3)}` : '');
  if (!st.lm) { $('aligned').removeAttribute('src'); }
  fit();
  status();
  renderList();
  requestPreview();
  history.replaceState(null, '', `?side=${st.side}&frame=${encodeURIComponent(name)}`);
  document.body.dataset.ready = '1';
}

function renderList() {
  const ul = $('queue');
  ul.innerHTML = '';
  st.list.forEach((e, i) => {
    const li = document.createElement('li');
    li.dataset.frame = e.frame;
    if (i === st.index) li.className = 'cur';
    const chips = (e.reasons || []).map((r) => `<span class="chip ${r}">${r.replace('_', ' ')}</span>`).join('');
    li.innerHTML = `<span>${e.fixed ? '✔ ' : ''}${e.frame}</span><span>${chips}</span>`;
    li.onclick = () => go(i);
    ul.appendChild(li);
  });
  const cur = ul.children[st.index];
  if (cur) cur.scrollIntoView({ block: 'nearest' });
}

async function go(i) {
  if (i < 0 || i >= st.list.length) return;
  st.index = i;
  await openFrame(st.list[i].frame);
}

async function loadList(want) {
  // a frame asked for (from the Faces page) opens at once; the queue, which reads every face's
  // metadata (seconds on a long clip), fills in beside it
  let opened = null;
  if (want) {
    st.list = [{ frame: want, reasons: [] }];
    st.index = 0;
    renderList();
    opened = openFrame(want);
  }
  const all = $('all-frames').checked;
  const q = await api(`/api/fixframe/${st.side}/queue`);
  if (all) {
    const { frames } = await api(`/api/fixframe/${st.side}/frames`);
    const reasons = Object.fromEntries(q.entries.map((e) => [e.frame, e.reasons]));
    st.list = frames.map((f) => ({ frame: f, reasons: reasons[f] || [] }));
    $('queue-summary').textContent = `${frames.length} frames, ${q.entries.length} to review`;
  } else {
    st.list = q.entries;
    $('queue-summary').textContent = `${q.entries.length} of ${q.frames} frames to review`;
  }
  const current = st.frame || want;
  let i = current ? st.list.findIndex((e) => e.frame === current) : 0;
  if (current && i < 0) { st.list.unshift({ frame: current, reasons: [] }); i = 0; }
  if (opened) await opened;
  if (opened || (st.img && st.frame === current)) { st.index = i; renderList(); return; }
  renderList();
  if (st.list.length) await go(Math.max(0, i));
  else { $('frame-status').textContent = 'nothing to review: tick "all frames" to browse every frame'; document.body.dataset.ready = '1'; }
}

document.addEventListener('keydown', (ev) => {
  if ((ev.target.tagName === 'INPUT' && ev.target.type !== 'checkbox') || ev.target.tagName === 'SELECT') return;
  if (ev.key === 'Enter') { ev.preventDefault(); save().then((ok) => ok && go(st.index + 1)); }
  else if (ev.key === 'ArrowRight' || ev.key === '.') go(st.index + 1);
  else if (ev.key === 'ArrowLeft' || ev.key === ',') go(st.index - 1);
  else if (ev.key === 'd' || ev.key === 'D') detect();
  else if (ev.key === 'r' || ev.key === 'R') reset();
  else if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 'z') {
    ev.preventDefault();
    const last = st.undo.pop();
    if (last) { const s = JSON.parse(last); st.rect = s.rect; st.lm = s.lm; st.dirty = true; draw(); requestPreview(); }
  }
});

function reset() {
  if (!st.info) return;
  st.rect = st.info.rect;
  st.lm = st.info.landmarks;
  st.dirty = false;
  status();
  draw();
  requestPreview();
}

async function init() {
  nav('fixframe');
  $('side').value = st.side;
  $('side').onchange = () => { st.side = $('side').value; st.frame = null; st.img = null; loadList(null); };
  $('all-frames').onchange = () => loadList(null);
  $('detect').onclick = detect;
  $('reset').onclick = reset;
  $('save').onclick = save;
  $('next').onclick = () => go(st.index + 1);
  $('prev').onclick = () => go(st.index - 1);
  window.addEventListener('resize', fit);
  await loadList(params.get('frame'));
}

// test hook: the page's state in frame coordinates (read-only use)
window.fixframe = { state: st, toScreen, save };
init().catch((e) => toast(e.message, 'error'));
