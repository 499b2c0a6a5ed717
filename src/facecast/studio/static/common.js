// Shared helpers of every studio page (ES module, no build step). See studio/app.py for the rules.
// The access token lives in an HttpOnly cookie set by the one-time link; state-changing requests also
// need it in the X-Facecast-Token header, so the server hands it to same-origin pages at /api/token
// (a cross-site page cannot read that response).

let tokenPromise = null;

export function token() {
  if (!tokenPromise) {
    tokenPromise = fetch('/api/token', { credentials: 'same-origin' })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error('not signed in: open the link `facecast studio` printed'))))
      .then((d) => d.token);
  }
  return tokenPromise;
}

// api(path, {method, json, body, raw}) -> parsed JSON (or the Response when raw); throws Error(detail).
export async function api(path, { method = 'GET', json, body, raw = false, headers = {} } = {}) {
  const h = { ...headers, 'X-Facecast-Token': await token() };
  let payload = body;
  if (json !== undefined) {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(json);
    if (method === 'GET') method = 'POST';
  }
  const resp = await fetch(path, { method, headers: h, body: payload, credentials: 'same-origin' });
  if (!resp.ok) {
    let detail = `${resp.status} ${resp.statusText}`;
    try {
      const d = await resp.json();
      if (d && d.detail) detail = typeof d.detail === 'string' ? d.detail : JSON.stringify(d.detail);
    } catch (_) { /* not JSON */ }
    const err = new Error(detail);
    err.status = resp.status;
    throw err;
  }
  if (raw) return resp;
  const type = resp.headers.get('content-type') || '';
  return type.includes('application/json') ? resp.json() : resp.text();
}

export const PAGES = [
  ['workspace', 'Workspace', '/'],
  ['faces', 'Faces', '/faces'],
  ['fixframe', 'Fix a frame', '/fixframe'],
  ['masks', 'Masks', '/masks'],
  ['train', 'Train', '/train'],
  ['merge', 'Merge', '/merge'],
  ['verify', 'Verify', '/verify'],
];

// nav(active): the top navigation inside <nav id="nav">, plus the jobs badge.
export function nav(active) {
  const el = document.getElementById('nav');
  if (!el) return;
  el.innerHTML = '';
  const brand = document.createElement('span');
  brand.className = 'brand';
  brand.textContent = 'facecast studio';
  el.appendChild(brand);
  for (const [id, label, href] of PAGES) {
    const a = document.createElement('a');
    a.href = href;
    a.textContent = label;
    a.dataset.page = id;
    if (id === active) a.className = 'active';
    el.appendChild(a);
  }
  const badge = document.createElement('span');
  badge.id = 'jobs-badge';
  badge.className = 'jobs-badge';
  el.appendChild(badge);
  const refresh = async () => {
    try {
      const { jobs } = await api('/api/jobs');
      const running = jobs.filter((j) => j.state === 'running' || j.state === 'queued');
      badge.textContent = running.length ? `${running.length} job${running.length > 1 ? 's' : ''} running` : '';
      badge.title = running.map((j) => j.title).join('\n');
    } catch (_) { /* offline */ }
  };
  refresh();
  sse('/api/jobs/events', (type) => { if (type === 'job') refresh(); });
}

// sse(path, onEvent(type, data)): server-sent events (the cookie carries the token). One EventSource per
// path is shared by every listener of the page (browsers allow ~6 connections per host); returns
// {close()} that removes this listener.
const streams = new Map();
export function sse(path, onEvent) {
  let s = streams.get(path);
  if (!s) {
    const es = new EventSource(path, { withCredentials: true });
    s = { es, listeners: new Set() };
    for (const type of ['hello', 'job', 'log', 'preview', 'message']) {
      es.addEventListener(type, (ev) => {
        let data = ev.data;
        try { data = JSON.parse(ev.data); } catch (_) { /* plain text */ }
        for (const fn of s.listeners) fn(type, data);
      });
    }
    streams.set(path, s);
  }
  s.listeners.add(onEvent);
  return { close() { s.listeners.delete(onEvent); if (!s.listeners.size) { s.es.close(); streams.delete(path); } } };
}

// toast(msg, kind): a short message in the corner ('error' kind stays longer).
export function toast(msg, kind = 'info') {
  let box = document.getElementById('toasts');
  if (!box) {
    box = document.createElement('div');
    box.id = 'toasts';
    document.body.appendChild(box);
  }
  const t = document.createElement('div');
  t.className = `toast ${kind}`;
  t.textContent = msg;
  box.appendChild(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 3500);
}

// fileUrl(rel): URL of a workspace file (served by /files/, cookie-authenticated) with a cache buster.
export function fileUrl(rel, bust = true) {
  const p = rel.split('/').map(encodeURIComponent).join('/');
  return `/files/${p}` + (bust ? `?t=${Date.now()}` : '');
}

// el(tag, attrs, ...children): tiny DOM builder.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return e;
}

// jobPanel(container, filter): live list of jobs (progress bar, log tail, Stop) kept in sync over SSE.
export function jobPanel(container, filter = () => true) {
  const jobs = new Map();
  const render = () => {
    container.innerHTML = '';
    const list = [...jobs.values()].filter(filter).sort((a, b) => Number(b.id) - Number(a.id)).slice(0, 8);
    if (!list.length) container.appendChild(el('p', { class: 'muted' }, 'No jobs yet.'));
    for (const j of list) {
      const pct = j.total ? Math.round((100 * j.done) / j.total) : null;
      const active = j.state === 'running' || j.state === 'queued';
      const row = el('div', { class: `job ${j.state}`, 'data-job': j.id },
        el('div', { class: 'job-head' },
          el('b', {}, j.title), ' ', el('span', { class: `state ${j.state}` }, j.stopping ? 'stopping' : j.state),
          ' ', el('span', { class: 'muted' }, j.total ? `${j.done}/${j.total}` : (j.done ? String(j.done) : '')),
          ' ', el('span', { class: 'muted' }, j.message || ''),
          active ? el('button', { class: 'stop', onclick: async () => {
            try { await api(`/api/jobs/${j.id}/stop`, { method: 'POST' }); } catch (e) { toast(e.message, 'error'); }
          } }, 'Stop') : null),
        el('div', { class: 'bar' }, el('div', { style: `width:${pct === null ? (active ? 100 : 0) : pct}%`, class: pct === null && active ? 'indeterminate' : '' })),
        j.error ? el('div', { class: 'error' }, j.error) : null,
        el('pre', { class: 'log' }, (j.logs || []).slice(-6).join('\n')));
      container.appendChild(row);
    }
  };
  api('/api/jobs').then(({ jobs: list }) => { for (const j of list) jobs.set(j.id, j); render(); });
  sse('/api/jobs/events', (type, data) => {
    if (type === 'job') {
      const old = jobs.get(data.id);
      jobs.set(data.id, { ...data, logs: old ? old.logs : [] });
      render();
    } else if (type === 'log') {
      const j = jobs.get(data.id);
      if (j) { j.logs = [...(j.logs || []), data.line].slice(-50); render(); }
    }
  });
  return jobs;
}

// an <img> once it has loaded (rejects with the URL when it cannot)
export function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load ${url}`));
    img.src = url;
  });
}
