// Faces page: a virtualised grid (only the visible rows are in the DOM, names fetched a page at a time,
// thumbnails from the server's disk cache with immutable URLs), sort / recover names as jobs,
// recoverable delete and restore, and the debug frame + landmarks of a face drawn on a canvas.
import { api, nav, toast, jobPanel, sse, loadImage } from '/static/common.js';

// GETs ride on the session cookie: no wait for /api/token before the first screen's requests
async function get(path) {
  const resp = await fetch(path, { credentials: 'same-origin' });
  if (!resp.ok) {
    let detail = `${resp.status} ${resp.statusText}`;
    try { detail = (await resp.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return resp.json();
}

// the requests faces.html started before this module loaded (first list page, first two chunks)
const prefetched = window.facesFirst || null;
function takeFirst(kind, index) {
  if (!prefetched || prefetched.side !== state.side || state.removed || state.cell > 128) return null;
  if (kind === 'list' && index === 0 && prefetched.list) { const p = prefetched.list; prefetched.list = null; return p; }
  if (kind === 'chunk' && prefetched.chunks[index]) { const p = prefetched.chunks[index]; prefetched.chunks[index] = null; return p; }
  return null;
}

const PAGE = 300;
const CHUNK = 32; // thumbnails come in chunks of 32 per request (one request per ~half screen)
const MAX_CHUNKS = 200; // kept in memory (~6,400 thumbnails); older ones are fetched again if needed
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const grid = $('grid');
const spacer = $('spacer');

const state = {
  side: params.get('side') === 'src' ? 'src' : 'dst',
  removed: false,
  total: 0,
  pages: new Map(), // page index -> items [{name, v}]
  loading: new Map(), // page index -> promise
  selected: new Set(),
  anchor: null, // index of the last plain click (shift-click range start)
  current: null, // name shown in the detail panel
  cell: 128,
  generation: 0, // bumped on every reload, so late page fetches of an old listing are dropped
  chunks: new Map(), // chunk index -> Map(name -> data URL), in insertion (LRU) order
  chunkLoading: new Set(),
  thumbGen: 0, // bumped whenever cached thumbnails become wrong (reload, other thumbnail size)
};

function thumbFor(i, it) {
  const chunk = state.chunks.get(Math.floor(i / CHUNK));
  return chunk ? chunk.get(`${it.name}|${it.v}`) : undefined;
}

function loadChunk(c) {
  if (state.chunks.has(c) || state.chunkLoading.has(c)) return;
  state.chunkLoading.add(c);
  const gen = state.thumbGen;
  const q = `offset=${c * CHUNK}&limit=${CHUNK}&removed=${state.removed}&size=${state.cell > 128 ? 256 : 128}`;
  const pre = takeFirst('chunk', c);
  (pre || get(`/api/faces/${state.side}/thumbs?${q}`)).then((d) => {
    state.chunkLoading.delete(c);
    if (gen !== state.thumbGen || !d) return;
    const m = new Map();
    for (const it of d.items) if (it.data) m.set(`${it.name}|${it.v}`, `data:image/jpeg;base64,${it.data}`);
    state.chunks.set(c, m);
    while (state.chunks.size > MAX_CHUNKS) state.chunks.delete(state.chunks.keys().next().value);
    schedule();
  }).catch((e) => { state.chunkLoading.delete(c); toast(e.message, 'error'); });
}

function itemAt(i) {
  const page = state.pages.get(Math.floor(i / PAGE));
  return page ? page[i % PAGE] : undefined;
}

async function loadPage(p) {
  if (state.pages.has(p)) return state.pages.get(p);
  if (state.loading.has(p)) return state.loading.get(p);
  const gen = state.generation;
  const q = `offset=${p * PAGE}&limit=${PAGE}&removed=${state.removed}`;
  const pre = takeFirst('list', p);
  const promise = (pre || get(`/api/faces/${state.side}/list?${q}`)).then((d) => {
    if (!d) throw new Error('could not list the faces');
    if (gen !== state.generation) { state.loading.delete(p); return []; }
    state.total = d.total;
    state.pages.set(p, d.items);
    state.loading.delete(p);
    return d.items;
  }).catch((e) => { state.loading.delete(p); toast(e.message, 'error'); return []; });
  state.loading.set(p, promise);
  return promise;
}

function layout() {
  const width = grid.clientWidth - 2;
  const cols = Math.max(1, Math.floor(width / state.cell));
  const size = Math.floor(width / cols);
  return { cols, size, rows: Math.ceil(state.total / cols) };
}

let raf = 0;
function schedule() { if (!raf) raf = requestAnimationFrame(() => { raf = 0; render(); }); }

function render() {
  const { cols, size, rows } = layout();
  spacer.style.height = `${rows * size}px`;
  const first = Math.max(0, Math.floor(grid.scrollTop / size) - 1);
  const last = Math.min(rows - 1, Math.ceil((grid.scrollTop + grid.clientHeight) / size) + 1);
  const start = first * cols;
  const end = Math.min(state.total, (last + 1) * cols);
  const needed = new Set();
  for (let i = start; i < end; i++) needed.add(Math.floor(i / PAGE));
  for (const p of needed) if (!state.pages.has(p)) loadPage(p).then(schedule);
  // reuse the cells that stay visible, drop the rest: the DOM holds only the visible rows
  const keep = new Map();
  for (const c of [...spacer.children]) {
    const i = Number(c.dataset.i);
    if (i >= start && i < end && c.dataset.name === (itemAt(i) || {}).name && c.dataset.size === String(size)) keep.set(i, c);
    else c.remove();
  }
  for (let i = start; i < end; i++) {
    const it = itemAt(i);
    if (!it) continue;
    let c = keep.get(i);
    if (!c) {
      c = document.createElement('div');
      c.className = 'cell';
      c.dataset.i = i;
      c.dataset.name = it.name;
      c.dataset.size = size;
      c.style.left = `${(i % cols) * size}px`;
      c.style.top = `${Math.floor(i / cols) * size}px`;
      c.style.width = c.style.height = `${size}px`;
      const img = document.createElement('img');
      img.decoding = 'async';
      img.alt = it.name;
      const label = document.createElement('span');
      label.className = 'label';
      label.textContent = it.name;
      c.append(img, label);
      spacer.appendChild(c);
    }
    const img = c.firstChild;
    if (!img.getAttribute('src')) {
      const data = thumbFor(i, it);
      if (data) img.src = data;
      else loadChunk(Math.floor(i / CHUNK));
    }
    c.classList.toggle('sel', state.selected.has(it.name));
    c.classList.toggle('cur', state.current === it.name);
  }
  $('count').textContent = `${state.total} face${state.total === 1 ? '' : 's'}${state.removed ? ' removed' : ''}`;
  $('selcount').textContent = state.selected.size ? `${state.selected.size} selected` : '';
}

async function reload(keepScroll = true) {
  state.generation++;
  state.pages.clear();
  state.loading.clear();
  state.chunks.clear();
  state.chunkLoading.clear();
  state.thumbGen++;
  const top = keepScroll ? grid.scrollTop : 0;
  spacer.innerHTML = '';
  await loadPage(0);
  grid.scrollTop = top;
  render();
}

// -- selection and keys --------------------------------------------------------------------------------
grid.addEventListener('scroll', schedule, { passive: true });
window.addEventListener('resize', schedule);
grid.addEventListener('click', (ev) => {
  const c = ev.target.closest('.cell');
  if (!c) return;
  const i = Number(c.dataset.i);
  const name = c.dataset.name;
  if (ev.shiftKey && state.anchor !== null) {
    const [a, b] = [Math.min(state.anchor, i), Math.max(state.anchor, i)];
    for (let k = a; k <= b; k++) { const it = itemAt(k); if (it) state.selected.add(it.name); }
  } else if (ev.ctrlKey || ev.metaKey) {
    if (state.selected.has(name)) state.selected.delete(name); else state.selected.add(name);
    state.anchor = i;
  } else {
    state.selected = new Set([name]);
    state.anchor = i;
  }
  showFace(name);
  render();
  grid.focus();
});
grid.addEventListener('keydown', (ev) => {
  if (ev.key === 'Delete' || ev.key === 'Backspace') { ev.preventDefault(); deleteSelected(); }
  else if (ev.key === 'Escape') { state.selected.clear(); render(); }
  else if ((ev.ctrlKey || ev.metaKey) && ev.key === 'a') {
    ev.preventDefault();
    for (const items of state.pages.values()) for (const it of items) state.selected.add(it.name);
    render();
  }
});

async function deleteSelected() {
  if (state.removed) { toast('These faces are already removed: use Restore'); return; }
  const names = [...state.selected];
  if (!names.length) { toast('Select faces first (click, Ctrl-click, Shift-click)'); return; }
  try {
    const r = await api(`/api/faces/${state.side}/delete`, { method: 'POST', json: { names } });
    toast(`${r.moved.length} face${r.moved.length === 1 ? '' : 's'} moved to ${r.removed_folder.split('/').pop()}/ (Restore brings them back)`);
    state.selected.clear();
    await reload();
  } catch (e) { toast(e.message, 'error'); }
}

async function restoreSelected() {
  try {
    let names = null;
    if (state.removed && state.selected.size) names = [...state.selected];
    const r = await api(`/api/faces/${state.side}/restore`, { method: 'POST', json: { names } });
    toast(`${r.restored.length} face${r.restored.length === 1 ? '' : 's'} restored`);
    state.selected.clear();
    await reload();
  } catch (e) { toast(e.message, 'error'); }
}

// -- detail: debug frame and landmarks -----------------------------------------------------------------
function invert(m) {
  const [[a, b, c], [d, e, f]] = m;
  const det = a * e - b * d;
  return [[e / det, -b / det, (b * f - c * e) / det], [-d / det, a / det, (c * d - a * f) / det]];
}
const apply = (m, [x, y]) => [m[0][0] * x + m[0][1] * y + m[0][2], m[1][0] * x + m[1][1] * y + m[1][2]];

function drawPoints(ctx, pts, k, color, r) {
  ctx.fillStyle = color;
  for (const [x, y] of pts) { ctx.beginPath(); ctx.arc(x * k, y * k, r, 0, 2 * Math.PI); ctx.fill(); }
}

async function showFace(name) {
  state.current = name;
  let meta;
  try {
    meta = await api(`/api/faces/${state.side}/meta/${encodeURIComponent(name)}?removed=${state.removed}`);
  } catch (e) { toast(e.message, 'error'); return; }
  if (state.current !== name) return;
  $('hint').hidden = true;
  $('face-info').hidden = false;
  $('face-name').textContent = name;
  const chips = [];
  if (meta.interpolated) chips.push('interpolated');
  if (meta.detector && meta.detector.name === 'manual') chips.push('manual');
  if (meta.mask_polygons.length) chips.push(`${meta.mask_polygons.length} polygons`);
  if (meta.has_xseg_mask) chips.push('xseg mask');
  $('face-chips').innerHTML = chips.map((c) => `<span class="chip">${c}</span>`).join('');
  const rows = [
    ['frame', meta.source.filename], ['frame size', meta.source.frame_size.join('×')],
    ['face', `${meta.face_type} ${meta.size}px`], ['identity', meta.identity ?? '–'],
    ['yaw / pitch / roll', ['yaw', 'pitch', 'roll'].map((k) => (meta.pose[k] ?? 0).toFixed(1)).join(' / ')],
    ['sharpness', meta.sharpness.toFixed(1)], ['score', meta.extra.score !== undefined ? Number(meta.extra.score).toFixed(3) : '–'],
    ['detector', meta.detector.name || '–'],
  ];
  $('meta').innerHTML = rows.map(([k, v]) => `<tr><th>${k}</th><td>${String(v).replace(/</g, '&lt;')}</td></tr>`).join('');
  $('fix').onclick = () => { location.href = `/fixframe?side=${state.side}&frame=${encodeURIComponent(meta.source.filename)}`; };
  $('edit-mask').onclick = () => { location.href = `/masks?side=${state.side}&face=${encodeURIComponent(name)}`; };
  $('edit-mask').disabled = state.removed;
  // the aligned face with its landmarks
  const fc = $('facecv').getContext('2d');
  try {
    const face = await loadImage(`/api/faces/${state.side}/image/${encodeURIComponent(name)}?removed=${state.removed}&v=${meta.version}`);
    const k = 200 / meta.size;
    fc.drawImage(face, 0, 0, 200, 200);
    drawPoints(fc, meta.landmarks, k, '#ff4040', 1.6);
  } catch (e) { fc.clearRect(0, 0, 200, 200); }
  // the debug frame: box, landmarks and the aligned square drawn from the metadata
  const cv = $('debug');
  const ctx = cv.getContext('2d');
  try {
    const frame = await loadImage(`/api/fixframe/${state.side}/frame/${encodeURIComponent(meta.source.filename)}`);
    if (state.current !== name) return;
    const w = 400;
    const k = w / frame.naturalWidth;
    cv.width = w;
    cv.height = Math.round(frame.naturalHeight * k);
    ctx.drawImage(frame, 0, 0, cv.width, cv.height);
    const [x0, y0, x1, y1] = meta.source.rect;
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = meta.detector.name === 'manual' ? '#ff40ff' : (meta.interpolated ? '#ffdc00' : '#00ff00');
    ctx.strokeRect(x0 * k, y0 * k, (x1 - x0) * k, (y1 - y0) * k);
    const inv = invert(meta.image_to_face);
    const s = meta.size;
    const sq = [[0, 0], [s, 0], [s, s], [0, s]].map((p) => apply(inv, p));
    ctx.strokeStyle = '#00a0ff';
    ctx.beginPath();
    sq.forEach(([x, y], j) => (j ? ctx.lineTo(x * k, y * k) : ctx.moveTo(x * k, y * k)));
    ctx.closePath();
    ctx.stroke();
    drawPoints(ctx, meta.source.landmarks, k, '#ff4040', 1.5);
  } catch (e) {
    cv.width = 400; cv.height = 60;
    ctx.fillStyle = '#888';
    ctx.fillText(`frame ${meta.source.filename} is not in data_${state.side}/`, 10, 30);
  }
}

// -- toolbar -------------------------------------------------------------------------------------------
async function startJob(path, body) {
  try {
    const job = await api(path, { method: 'POST', json: body || {} });
    toast(`${job.title}: started`);
    const es = sse('/api/jobs/events', (type, data) => {
      if (type === 'job' && data.id === job.id && !['queued', 'running'].includes(data.state)) {
        es.close();
        if (data.state === 'done') toast(`${data.title}: done`); else toast(`${data.title}: ${data.state} ${data.error || ''}`, data.error ? 'error' : 'info');
        reload(false);
      }
    });
  } catch (e) { toast(e.message, 'error'); }
}

async function init() {
  // the first screen first: its names and thumbnails are requested before anything else on the page
  $('side').value = state.side;
  const first = reload(false);
  for (let c = 0; c < 2; c++) loadChunk(c);
  nav('faces');
  jobPanel($('jobs'), (j) => j.kind.startsWith('faceset'));
  get('/api/faces/sort-methods').then(({ methods }) => {
    $('sort-method').innerHTML = methods.map((m) => `<option>${m}</option>`).join('');
  });
  $('side').onchange = () => { state.side = $('side').value; state.selected.clear(); history.replaceState(null, '', `?side=${state.side}`); reload(false); };
  $('show-removed').onchange = () => { state.removed = $('show-removed').checked; state.selected.clear(); reload(false); };
  $('sort').onclick = () => startJob(`/api/faces/${state.side}/sort`, { method: $('sort-method').value, reverse: $('sort-reverse').checked });
  $('recover').onclick = () => startJob(`/api/faces/${state.side}/recover-names`);
  $('delete').onclick = deleteSelected;
  $('restore').onclick = restoreSelected;
  $('zoom').oninput = () => {
    const big = Number($('zoom').value) > 128;
    if (big !== state.cell > 128) { state.chunks.clear(); state.chunkLoading.clear(); state.thumbGen++; }
    state.cell = Number($('zoom').value);
    spacer.innerHTML = '';
    render();
  };
  await first;
  const want = params.get('face');
  if (want) showFace(want);
  document.body.dataset.ready = '1';
}

init().catch((e) => toast(e.message, 'error'));
