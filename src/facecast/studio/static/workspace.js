import { api, nav, el, toast, jobPanel, fileUrl, sse } from '/static/common.js';

nav('workspace');
jobPanel(document.getElementById('jobs'));

async function run(action) {
  try {
    const job = await api('/api/workspace/run', { method: 'POST', json: { action } });
    toast(`started: ${job.title}`);
  } catch (e) { toast(e.message, 'error'); }
}

function actionButton(action, label, primary = false) {
  if (!action) return null;
  if (action.startsWith('page:')) {
    const page = action.slice(5);
    return el('a', { class: 'button' + (primary ? ' primary' : ''), href: `/${page}` , style: 'text-decoration:none;display:inline-block' }, label || `Open ${page}`);
  }
  return el('button', { class: primary ? 'primary' : '', onclick: () => run(action), 'data-action': action }, label || action);
}

const fmt = (v) => (v === null || v === undefined ? '–' : String(v));

function sideCell(info) {
  return el('span', {}, `${info.frames} frames`, info.video ? el('span', { class: 'muted' }, ` (from ${info.video})`) : null);
}

function facesCell(info) {
  const x = info.extract;
  if (!x) return el('span', { class: 'muted' }, info.aligned ? `${info.aligned} aligned faces` : 'not extracted');
  return el('span', {}, `${info.aligned} aligned · `,
    el('span', { class: 'ok' }, `${fmt(x.faces_written)} found`), ' · ',
    el('span', { class: x.frames_without_face ? 'warn' : 'muted' }, `${fmt(x.frames_without_face)} missed`), ' · ',
    el('span', { class: 'muted' }, `${fmt(x.interpolated_frames)} interpolated`),
    x.manual_frames ? el('span', { class: 'muted' }, ` · ${x.manual_frames} manual`) : null);
}

function render(s) {
  document.getElementById('ws-root').textContent = s.root;
  const next = document.getElementById('next-body');
  next.innerHTML = '';
  next.append(el('span', { id: 'next-text' }, s.next.text), ' ', actionButton(s.next.action, 'Do it', true) || '');
  const tbody = document.querySelector('#stages tbody');
  tbody.innerHTML = '';
  const row = (name, cells, actions) => tbody.appendChild(el('tr', { 'data-stage': name }, el('th', {}, name), ...cells.map((c) => el('td', {}, c)), el('td', {}, ...actions.filter(Boolean))));
  const { src, dst } = s.sides;
  const valid = s.consents.filter((c) => c.status === 'valid').length;
  row('Consent', [el('span', { class: valid ? 'ok' : 'error' }, valid ? `${valid} valid record(s)` : 'none: nothing can be extracted, trained or merged'), s.src_identity ? `source identity: ${s.src_identity}` : ''], []);
  row('Frames', [el('span', {}, 'src ', sideCell(src)), el('span', {}, 'dst ', sideCell(dst))],
    [src.video ? actionButton('frames:src', 'Cut src') : null, dst.video ? actionButton('frames:dst', 'Cut dst') : null]);
  row('Faces', [el('span', {}, 'src ', facesCell(src)), el('span', {}, 'dst ', facesCell(dst))],
    [actionButton('extract:src', 'Extract src'), actionButton('extract:dst', 'Extract dst'), actionButton('page:faces', 'Faces')]);
  const m = (x) => `${x.masks.polygons} drawn, ${x.masks.xseg} XSeg`;
  row('Masks', [`src ${m(src)}`, `dst ${m(dst)}`], [actionButton('page:masks', 'Masks')]);
  const models = s.models.length ? el('div', {}, ...s.models.map((md) => el('div', { 'data-model': md.name },
    el('b', {}, md.name), ` ${md.arch} ${md.resolution}px ${md.face_type} · iteration ${md.iteration}`,
    md.target_iter ? ` / ${md.target_iter}` : '',
    md.merge_progress ? el('span', { class: 'muted' }, ` · merged ${md.merge_progress.done}/${md.merge_progress.total}`) : null,
    ' ', actionButton(`merge:${md.name}`, 'Merge all')))) : el('span', { class: 'muted' }, 'no model yet');
  row('Models', [models, ''], [actionButton('page:train', 'Train')]);
  row('Merged', [`${s.merged} of ${dst.frames} dst frames`, ''], [actionButton('page:merge', 'Merger'), s.merged ? actionButton('video', 'Make video') : null]);
  row('Result', [s.result ? el('a', { href: fileUrl(s.result.path), target: '_blank' }, `${s.result.path} (${(s.result.bytes / 1e6).toFixed(2)} MB)`) : el('span', { class: 'muted' }, 'not yet'), ''],
    [s.result ? actionButton('page:verify', 'Verify') : null]);
  const cons = document.getElementById('consents');
  cons.innerHTML = '';
  if (!s.consents.length) cons.append(el('p', { class: 'error' }, 'No consent record. Add one with `facecast consent add -w WORKSPACE --identity NAME --statement ... --signed-by ...`.'));
  else cons.append(el('table', {}, el('tr', {}, el('th', {}, 'identity'), el('th', {}, 'status'), el('th', {}, 'signed by'), el('th', {}, 'expires'), el('th', {}, 'id')),
    ...s.consents.map((c) => el('tr', {}, el('td', {}, c.identity), el('td', { class: c.status === 'valid' ? 'ok' : 'error' }, c.status), el('td', {}, c.signed_by), el('td', {}, fmt(c.expires)), el('td', { class: 'muted' }, c.id)))));
}

// the last cluster run (--engine ray), as `facecast cluster status` shows it; hidden when there is none
function renderCluster(c) {
  const box = document.getElementById('cluster');
  box.innerHTML = '';
  box.closest('.panel').hidden = !c.run;
  if (!c.run) return;
  const counts = Object.entries(c.counts || {}).map(([k, v]) => `${v} ${k}`).join(', ');
  const retried = Object.values(c.shards || {}).filter((sh) => Number(sh.attempt || 1) > 1).length;
  box.append(el('table', {},
    el('tr', {}, el('th', {}, 'run'), el('td', {}, `${c.stage} · ${c.run} · `, el('span', { class: c.state === 'done' ? 'ok' : (c.state === 'running' ? 'warn' : 'error') }, c.state))),
    el('tr', {}, el('th', {}, 'frames'), el('td', {}, `${fmt(c.frames_done)} / ${fmt(c.frames_total)}`)),
    el('tr', {}, el('th', {}, 'shards'), el('td', {}, counts || '-', retried ? el('span', { class: 'warn' }, ` · ${retried} retried`) : '')),
    el('tr', {}, el('th', {}, 'workers'), el('td', {}, ...(c.workers || []).map((w) => el('div', { class: w.alive === false ? 'error' : '' }, `${w.node} ${w.id} cpus=${w.cpus}${w.alive === false ? ' (dead)' : ''}`))))));
}

async function refresh() {
  try { render(await api('/api/workspace/status')); } catch (e) { toast(e.message, 'error'); }
  try { renderCluster(await api('/api/workspace/cluster')); } catch (e) { toast(e.message, 'error'); }
}
refresh();
// stage state changes when a job ends: refresh then (and every 10 s for changes made by the CLI)
sse('/api/jobs/events', (type, data) => {
  if (type === 'job' && ['done', 'failed', 'stopped'].includes(data.state)) refresh();
});
setInterval(refresh, 10000);
