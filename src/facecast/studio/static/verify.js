import { api, nav, el, toast } from '/static/common.js';

nav('verify');
const $ = (id) => document.getElementById(id);

function show(r) {
  $('report').hidden = false;
  $('report-name').textContent = r.path;
  const v = $('verdict');
  v.textContent = r.labelled ? 'Labelled: made with facecast (AI-modified)' : 'Not labelled: no manifest, no watermark found';
  v.className = `verdict ${r.labelled ? 'ok' : 'warn'}`;
  v.dataset.labelled = String(r.labelled);
  const m = r.manifest || {}; const w = r.watermark || {};
  const rows = [
    ['kind', r.kind],
    ['C2PA manifest', m.present ? `${m.state}${m.signer ? ` · signed by ${m.signer}` : ''}` : 'absent (re-encoded, or never signed)'],
    ['watermark', w.found ? `found · payload ${w.payload || '–'} · ${w.crc_ok ? 'CRC ok' : 'CRC failed'} · confidence ${Number(w.confidence).toFixed(1)} · ${w.frames} frame(s)`
      : `not found (confidence ${Number(w.confidence || 0).toFixed(1)}, ${w.frames || 0} frame(s))`],
    ['this workspace', r.workspace_match === null || r.workspace_match === undefined ? '–' : r.workspace_match ? 'made in this workspace' : 'another workspace'],
  ];
  $('rows').innerHTML = '';
  for (const [k, val] of rows) $('rows').appendChild(el('tr', {}, el('th', {}, k), el('td', { 'data-row': k }, val)));
  $('claims').textContent = JSON.stringify(m.claims || m, null, 1);
}

async function upload(file) {
  toast(`checking ${file.name}…`);
  try {
    const r = await api('/api/verify/upload', { method: 'POST', body: file, headers: { 'X-Filename': file.name } });
    show(r);
  } catch (e) { toast(e.message, 'error'); }
}

const drop = $('drop');
drop.addEventListener('click', () => $('file').click());
$('file').addEventListener('change', () => { if ($('file').files[0]) upload($('file').files[0]); });
drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => { ev.preventDefault(); drop.classList.remove('over'); if (ev.dataTransfer.files[0]) upload(ev.dataTransfer.files[0]); });
$('check-result').addEventListener('click', async () => {
  try { show(await api('/api/verify/file', { method: 'POST', json: { path: 'result.mp4' } })); } catch (e) { toast(e.message, 'error'); }
});
