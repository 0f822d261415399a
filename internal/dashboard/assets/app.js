// Spindle's dashboard. It reads one event stream from the gateway
// (GET /admin/v1/dashboard/stream: a "board" event, then an "update" a
// second) and calls the same JSON APIs as the CLI. The API key, when the
// platform needs one, lives in session storage and travels as a bearer
// header, never in a URL. Everything a tenant wrote (names, error
// messages, logs) is put on the page as text, never as HTML.
'use strict';
(() => {
  const HISTORY_S = 15 * 60; // seconds of samples kept, as the gateway does
  const KEY = 'spindle.key';
  const state = {
    key: sessionStorage.getItem(KEY) || '',
    board: null, // the latest update
    history: new Map(), // function key -> samples, oldest first
    route: parseRoute(),
    abort: null,
    gen: 0,
    charts: [],
    built: '', // the route the page skeleton was built for
  };
  window.spindle = state; // for the console and the browser tests

  // ---- small DOM helpers -------------------------------------------------
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  const $ = (id) => document.getElementById(id);
  const fill = (el, ...kids) => { el.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false)); };

  function bytes(n) {
    if (!n) return '0 B';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + u[i];
  }
  const msText = (v) => (v ? (v < 1 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)) + ' ms' : '–');
  const durText = (ns) => msText(ns / 1e6);
  const rateText = (v) => (v ? v.toFixed(v < 10 ? 1 : 0) + '/s' : '0/s');
  const timeText = (t) => new Date(t).toLocaleTimeString();
  const vcpuText = (v) => (Math.round(v * 100) / 100) + ' vCPU';

  // ---- routing -------------------------------------------------------------
  function parseRoute() {
    const m = location.hash.match(/^#\/f\/([^/]+)\/([^/]+)$/);
    return m ? { fn: decodeURIComponent(m[1]) + '/' + decodeURIComponent(m[2]) } : { fn: '' };
  }
  const fnHref = (key) => '#/f/' + key.split('/').map(encodeURIComponent).join('/');
  window.addEventListener('hashchange', () => {
    state.route = parseRoute();
    state.board = null; // until the new stream's first event
    connect();
    render();
  });

  // ---- the key and the APIs ---------------------------------------------------
  function authHeaders(extra) {
    const hs = Object.assign({}, extra);
    if (state.key) hs.Authorization = 'Bearer ' + state.key;
    return hs;
  }
  async function call(method, path, body, headers) {
    const t0 = performance.now();
    let res;
    try {
      res = await fetch(path, { method, body, headers: authHeaders(headers) });
    } catch (e) {
      return { status: 0, ok: false, json: null, text: String(e), ms: performance.now() - t0 };
    }
    const ctype = res.headers.get('Content-Type') || '';
    const text = await res.text();
    const ms = performance.now() - t0;
    let json = null;
    if (ctype.includes('json')) { try { json = JSON.parse(text); } catch (e) { json = null; } }
    if (res.status === 401) askKey(json && json.error);
    return { status: res.status, ok: res.ok, json, text, ms };
  }
  const errorText = (r) => (r.json && r.json.error) || r.text || ('HTTP ' + r.status);

  function askKey(why) {
    $('key-panel').hidden = false;
    if (why) $('key-why').textContent = why + ' — enter an API key: a tenant\'s key shows its functions, the admin key every tenant\'s.';
    $('key-input').focus();
  }
  $('key-open').addEventListener('click', () => { const p = $('key-panel'); p.hidden = !p.hidden; if (!p.hidden) $('key-input').focus(); });
  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.key = $('key-input').value.trim();
    $('key-input').value = '';
    if (state.key) sessionStorage.setItem(KEY, state.key);
    $('key-panel').hidden = true;
    state.board = null;
    state.history = new Map();
    state.built = '';
    connect();
    render();
  });
  $('key-forget').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    state.key = '';
    state.board = null;
    state.built = '';
    connect();
    render();
  });

  // ---- the stream ----------------------------------------------------------------
  function setConn(text, bad) {
    const c = $('conn');
    c.textContent = text;
    c.classList.toggle('bad', !!bad);
  }
  async function connect() {
    const my = ++state.gen;
    if (state.abort) state.abort.abort();
    const ctl = new AbortController();
    state.abort = ctl;
    const q = state.route.fn ? '?function=' + encodeURIComponent(state.route.fn) : '';
    let retry = true;
    try {
      const res = await fetch('/admin/v1/dashboard/stream' + q, { headers: authHeaders(), signal: ctl.signal });
      if (res.status === 401 || res.status === 403) {
        const j = await res.json().catch(() => ({}));
        setConn('needs a key', true);
        askKey(j.error);
        retry = false;
      } else if (!res.ok) {
        const j = await res.json().catch(() => ({}));
        setConn('error: ' + (j.error || 'HTTP ' + res.status), true);
      } else {
        setConn('live');
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const chunk = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (my === state.gen) onEvent(chunk);
          }
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    if (my !== state.gen || !retry) return;
    setConn('reconnecting…', true);
    setTimeout(() => { if (my === state.gen) connect(); }, 1000);
  }

  function onEvent(chunk) {
    let ev = 'message';
    let data = '';
    for (const line of chunk.split('\n')) {
      if (line.startsWith('event: ')) ev = line.slice(7);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (!data) return;
    const v = JSON.parse(data);
    if (ev === 'board') {
      state.history = new Map(Object.entries(v.history || {}));
    }
    const now = Math.floor(Date.parse(v.time) / 1000);
    for (const f of v.functions) {
      let h = state.history.get(f.key);
      if (!h) { h = []; state.history.set(f.key, h); }
      const s = f.sample;
      if (s && s.t && (!h.length || s.t > h[h.length - 1].t)) h.push(s);
      while (h.length && h[0].t < now - HISTORY_S) h.shift();
    }
    for (const k of state.history.keys()) {
      if (!v.functions.some((f) => f.key === k)) state.history.delete(k);
    }
    state.board = v;
    render();
  }

  // ---- rendering -----------------------------------------------------------------
  function who(b) {
    if (!b) return '';
    if (!b.tenant) return 'admin: every tenant (watch only)';
    return state.key ? 'tenant ' + b.tenant : 'open mode (no key needed)';
  }

  function render() {
    const b = state.board;
    $('who').textContent = who(b);
    // A function page is built again when its function appears or goes.
    const route = state.route.fn ? 'fn:' + state.route.fn + (b && b.detail ? '' : ':missing') : 'overview';
    const main = $('main');
    if (!b) {
      if (state.built !== 'waiting') { fill(main, h('p', { class: 'muted', text: 'Waiting for the platform…' })); state.built = 'waiting'; destroyCharts(); }
      return;
    }
    if (state.built !== route) {
      destroyCharts();
      if (state.route.fn) buildFunction(main, b);
      else buildOverview(main, b);
      state.built = route;
      document.title = state.route.fn ? state.route.fn + ' · Spindle' : 'Spindle';
    }
    if (state.route.fn) { if (b.detail) updateFunction(b); } else updateOverview(b);
  }

  // ---- overview ------------------------------------------------------------------
  function buildOverview(main, b) {
    fill(main,
      h('section', { class: 'panel', 'aria-labelledby': 'node-title' },
        h('h2', { id: 'node-title', text: 'This node' }),
        h('div', { id: 'node', class: 'cards' })),
      h('section', { class: 'panel', 'aria-labelledby': 'fns-title' },
        h('h2', { id: 'fns-title', text: 'Functions' }),
        h('div', { class: 'table-wrap' },
          h('table', { id: 'functions' },
            h('thead', {}, h('tr', {},
              ['Function', 'State', 'Instances', 'vCPU', 'Memory (RSS / PSS)', 'Requests', 'p50', 'p99', 'Errors', 'Cold starts']
                .map((c) => h('th', { scope: 'col', text: c })))),
            h('tbody', { id: 'fn-rows' })))),
      b.can_manage ? deployPanel() : null);
  }

  function card(label, value, sub, id) {
    return h('div', { class: 'card' },
      h('div', { class: 'card-label', text: label }),
      h('div', { class: 'card-value', id, text: value }),
      sub ? h('div', { class: 'card-sub', text: sub }) : null);
  }

  function updateOverview(b) {
    const n = b.node;
    const saved = n.model_if_copied_bytes - n.model_shared_bytes;
    fill($('node'),
      card('CPUs given to functions', (Math.round(n.vcpus * 100) / 100) + ' of ' + n.cpus, n.instances + ' instance' + (n.instances === 1 ? '' : 's') + ' running', 'node-vcpus'),
      card('Memory', bytes(n.memory_total_bytes - n.memory_available_bytes) + ' used', 'of ' + bytes(n.memory_total_bytes)),
      card('Model bytes, shared', bytes(n.model_shared_bytes), 'one copy in the page cache, mapped by every instance', 'node-shared'),
      card('With a copy per instance', bytes(n.model_if_copied_bytes), saved > 0 ? bytes(saved) + ' saved by sharing' : 'nothing to save yet'),
      card('Private memory of instances', bytes(n.private_bytes), 'heaps and activations'));
    const rows = b.functions.map((f) => {
      const s = f.sample || {};
      const over = b.slo && s.p99_ms > b.slo / 1e6;
      const errs = Object.entries(f.errors || {}).map(([code, c]) => code + ': ' + c).join(', ');
      return h('tr', { 'data-key': f.key },
        h('th', { scope: 'row' }, h('a', { href: fnHref(f.key), text: b.tenant ? f.name : f.key }), h('div', { class: 'sub', text: f.task })),
        h('td', {}, h('span', { class: 'state state-' + f.state, text: f.state === 'idle' ? 'scaled to zero' : f.state })),
        h('td', { class: 'num', text: f.instances }),
        h('td', { class: 'num', text: f.vcpu }),
        h('td', { class: 'num', text: f.instances ? bytes(f.rss_bytes) + ' / ' + bytes(f.pss_bytes) : '–' }),
        h('td', { class: 'num', text: rateText(s.rate) }),
        h('td', { class: 'num', text: msText(s.p50_ms) }),
        h('td', { class: 'num' + (over ? ' over' : ''), text: msText(s.p99_ms) + (b.slo ? ' / ' + msText(b.slo / 1e6) : '') }),
        h('td', { class: 'num', text: errs || '0' }),
        h('td', { class: 'num', text: f.cold_starts }));
    });
    if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: 10, class: 'muted', text: 'No functions yet.' + (b.can_manage ? ' Deploy one below, or with `spindle deploy`.' : '') })));
    fill($('fn-rows'), rows);
  }

  function deployPanel() {
    const out = h('pre', { id: 'deploy-out', class: 'out', 'aria-live': 'polite' });
    const task = h('select', { id: 'deploy-task', name: 'task' },
      ['infer', 'text-classification', 'embedding', 'image-classification', 'cpu-burn'].map((t) => h('option', { value: t, text: t })));
    const form = h('form', { id: 'deploy-form', class: 'grid-form' },
      h('label', { for: 'deploy-name', text: 'Name' }),
      h('input', { id: 'deploy-name', required: true, pattern: '[a-z0-9]([a-z0-9\\-]{0,61}[a-z0-9])?', placeholder: 'my-model', autocomplete: 'off' }),
      h('label', { for: 'deploy-task', text: 'Task' }), task,
      h('label', { for: 'deploy-files', text: 'Files' }),
      h('input', { id: 'deploy-files', type: 'file', multiple: true }),
      h('label', { for: 'deploy-model', text: 'Model file (if several .onnx)' }),
      h('input', { id: 'deploy-model', placeholder: 'model.onnx', autocomplete: 'off' }),
      h('label', { for: 'deploy-batch', text: 'Batching' }),
      h('input', { id: 'deploy-batch', placeholder: 'off, auto or max=8,delay=2ms', autocomplete: 'off' }),
      h('label', { for: 'deploy-config', text: 'Task config (JSON)' }),
      h('textarea', { id: 'deploy-config', rows: 2, placeholder: '{"labels": "labels.txt"}' }),
      h('span'), h('button', { type: 'submit', id: 'deploy-submit', text: 'Deploy' }));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const fd = new FormData();
      fd.append('name', $('deploy-name').value.trim());
      fd.append('task', task.value);
      if ($('deploy-model').value.trim()) fd.append('model', $('deploy-model').value.trim());
      if ($('deploy-batch').value.trim()) fd.append('batch', $('deploy-batch').value.trim());
      if ($('deploy-config').value.trim()) fd.append('config', $('deploy-config').value.trim());
      for (const f of $('deploy-files').files) fd.append('file', f, f.name);
      out.textContent = 'Deploying…';
      const r = await call('POST', '/admin/v1/functions', fd);
      out.textContent = r.ok ? 'Deployed ' + (r.json && r.json.name) + ' in ' + r.ms.toFixed(0) + ' ms.' : 'Refused (' + r.status + '): ' + errorText(r);
      out.classList.toggle('bad', !r.ok);
    });
    return h('section', { class: 'panel', 'aria-labelledby': 'deploy-title' },
      h('h2', { id: 'deploy-title', text: 'Deploy a function' }), form, out);
  }

  // ---- function page ----------------------------------------------------------------
  function chartBox(id, title) {
    return h('figure', { class: 'chart', id, 'data-points': '0' }, h('figcaption', { text: title }), h('div', { class: 'plot' }));
  }

  function buildFunction(main, b) {
    const key = state.route.fn;
    const d = b.detail;
    if (!d) {
      fill(main, h('p', {}, 'Function ', h('code', { text: key }), ' is not deployed, or not yours. ', h('a', { href: '#/', text: 'All functions' })));
      return;
    }
    fill(main,
      h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/', text: 'Functions' }), ' / ', h('span', { text: b.tenant ? d.name : d.key })),
      h('section', { class: 'panel', 'aria-labelledby': 'fn-title' },
        h('h2', { id: 'fn-title', text: d.name }),
        h('div', { id: 'fn-cards', class: 'cards' })),
      h('section', { class: 'charts', 'aria-label': 'Live charts, last 15 minutes' },
        chartBox('chart-latency', 'Latency (ms): p50, p95, p99' + (b.slo ? ', SLO' : '')),
        chartBox('chart-rate', 'Requests per second, errors per second'),
        chartBox('chart-capacity', 'vCPUs and instances'),
        chartBox('chart-memory', 'Memory (MiB): RSS, PSS')),
      b.can_manage ? actionsPanel(d) : null,
      b.can_manage ? tryPanel(d) : null,
      h('section', { class: 'panel', 'aria-labelledby': 'tl-title' }, h('h2', { id: 'tl-title', text: 'Scaling timeline' }), h('ol', { id: 'fn-timeline', class: 'timeline' })),
      h('section', { class: 'panel', 'aria-labelledby': 'cs-title' }, h('h2', { id: 'cs-title', text: 'Recent cold starts' }), h('div', { class: 'table-wrap' }, h('table', { id: 'fn-coldstarts' }))),
      h('section', { class: 'panel', 'aria-labelledby': 'in-title' }, h('h2', { id: 'in-title', text: 'Instances' }), h('div', { class: 'table-wrap' }, h('table', { id: 'fn-instances' }))),
      h('section', { class: 'panel', 'aria-labelledby': 'md-title' }, h('h2', { id: 'md-title', text: 'Model' }), h('div', { id: 'fn-model' })),
      h('section', { class: 'panel', 'aria-labelledby': 'er-title' }, h('h2', { id: 'er-title', text: 'Recent errors' }), h('div', { class: 'table-wrap' }, h('table', { id: 'fn-errors' }))),
      h('section', { class: 'panel', 'aria-labelledby': 'lg-title' }, h('h2', { id: 'lg-title', text: 'Instance log' }), h('pre', { id: 'fn-log', class: 'log', tabindex: '0' })));
    makeCharts(b);
  }

  function actionsPanel(d) {
    const out = h('p', { id: 'action-out', 'aria-live': 'polite' });
    const scale = h('form', { id: 'scale-form', class: 'inline-form' },
      h('label', { for: 'scale-vcpu', text: 'vCPU per instance' }),
      h('input', { id: 'scale-vcpu', type: 'number', min: '0.25', step: '0.25', value: d.vcpu }),
      h('label', { for: 'scale-memory', text: 'Memory limit (MiB, 0 = none)' }),
      h('input', { id: 'scale-memory', type: 'number', min: '0', step: '1', value: d.memory_limit ? Math.round(d.memory_limit / 1048576) : 0 }),
      h('button', { type: 'submit', id: 'scale-apply', text: 'Scale' }));
    scale.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = { vcpu: Number($('scale-vcpu').value), memory: Math.round(Number($('scale-memory').value) * 1048576) };
      const r = await call('POST', '/admin/v1/functions/' + encodeURIComponent(d.name) + '/scale', JSON.stringify(body), { 'Content-Type': 'application/json' });
      out.textContent = r.ok ? 'Now ' + r.json.vcpu + ' vCPU, ' + r.json.workers + ' workers per instance.' : 'Refused (' + r.status + '): ' + errorText(r);
      out.className = r.ok ? '' : 'bad';
    });
    const confirmName = h('input', { id: 'remove-confirm', autocomplete: 'off', 'aria-describedby': 'remove-hint' });
    const confirmBox = h('div', { id: 'remove-box', class: 'confirm', hidden: true },
      h('p', { id: 'remove-hint' }, 'Type ', h('code', { text: d.name }), ' to remove it: its instances stop and its model is deleted if nothing else uses it.'),
      h('label', { for: 'remove-confirm', text: 'Name' }), confirmName,
      h('button', { type: 'button', id: 'remove-yes', class: 'danger', text: 'Remove for good', onclick: async () => {
        if (confirmName.value !== d.name) { out.textContent = 'The name typed does not match.'; out.className = 'bad'; return; }
        const r = await call('DELETE', '/admin/v1/functions/' + encodeURIComponent(d.name));
        if (r.ok) { location.hash = '#/'; return; }
        out.textContent = 'Refused (' + r.status + '): ' + errorText(r);
        out.className = 'bad';
      } }),
      h('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => { confirmBox.hidden = true; } }));
    return h('section', { class: 'panel', 'aria-labelledby': 'act-title' },
      h('h2', { id: 'act-title', text: 'Actions' }), scale,
      h('button', { type: 'button', id: 'remove-open', class: 'danger', text: 'Remove…', onclick: () => { confirmBox.hidden = false; confirmName.focus(); } }),
      confirmBox, out);
  }

  // exampleRequest is an OIP request with zeros for d's inputs (dynamic
  // dimensions as 1).
  function exampleRequest(d) {
    const inputs = (d.metadata.inputs || []).map((t) => {
      const shape = (t.shape || []).map((n) => (n > 0 ? n : 1));
      const count = shape.reduce((a, n) => a * n, 1);
      const zero = t.datatype === 'BYTES' ? '' : t.datatype === 'BOOL' ? false : 0;
      return { name: t.name, shape, datatype: t.datatype, data: count <= 4096 ? new Array(count).fill(zero) : [] };
    });
    return JSON.stringify({ inputs }, null, 0);
  }

  function tryPanel(d) {
    const out = h('pre', { id: 'try-out', class: 'out', 'aria-live': 'polite' });
    const lat = h('p', { id: 'try-latency' });
    let input;
    let send;
    const base = '/v1/tasks/' + encodeURIComponent(d.name);
    if (d.task === 'image-classification') {
      input = h('input', { id: 'try-input', type: 'file', accept: 'image/png,image/jpeg' });
      send = () => { const f = input.files[0]; return f ? call('POST', base, f, { 'Content-Type': f.type || 'image/png' }) : null; };
    } else if (d.task === 'text-classification' || d.task === 'embedding') {
      input = h('textarea', { id: 'try-input', rows: 3, text: 'Spindle serves models as functions.' });
      send = () => call('POST', base, JSON.stringify({ text: input.value }), { 'Content-Type': 'application/json' });
    } else if (d.task === 'cpu-burn') {
      input = h('textarea', { id: 'try-input', rows: 2, text: '{"ms": 10}' });
      send = () => call('POST', base, input.value, { 'Content-Type': 'application/json' });
    } else {
      input = h('textarea', { id: 'try-input', rows: 5, class: 'mono', text: exampleRequest(d) });
      send = () => call('POST', '/v2/models/' + encodeURIComponent(d.name) + '/infer', input.value, { 'Content-Type': 'application/json' });
    }
    const form = h('form', { id: 'try-form' },
      h('label', { for: 'try-input', text: d.task === 'infer' ? 'OIP v2 request (JSON)' : d.task === 'image-classification' ? 'Image (PNG or JPEG)' : 'Request' }),
      input, h('button', { type: 'submit', id: 'try-send', text: 'Send' }));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const p = send();
      if (!p) { out.textContent = 'Choose an image first.'; return; }
      out.textContent = 'Waiting…';
      const r = await p;
      lat.textContent = 'HTTP ' + r.status + ' in ' + r.ms.toFixed(1) + ' ms (round trip from this browser)';
      out.textContent = r.json ? JSON.stringify(r.json, null, 2).slice(0, 20000) : r.text.slice(0, 20000);
      out.classList.toggle('bad', !r.ok);
    });
    return h('section', { class: 'panel', 'aria-labelledby': 'try-title' }, h('h2', { id: 'try-title', text: 'Try it' }), form, lat, out);
  }

  function updateFunction(b) {
    const d = b.detail;
    const s = d.sample || {};
    const over = b.slo && s.p99_ms > b.slo / 1e6;
    fill($('fn-cards'),
      card('State', d.state === 'idle' ? 'scaled to zero' : d.state, d.task, 'fn-state'),
      card('vCPU per instance', vcpuText(d.vcpu), d.instances + ' instance' + (d.instances === 1 ? '' : 's'), 'fn-vcpu'),
      card('Requests', rateText(s.rate), 'last 10 s', 'fn-rate'),
      card('p99', msText(s.p99_ms), b.slo ? (over ? 'over' : 'within') + ' the SLO of ' + msText(b.slo / 1e6) : 'p50 ' + msText(s.p50_ms), 'fn-p99'),
      card('Memory', d.instances ? bytes(d.rss_bytes) + ' RSS' : '–', d.instances ? bytes(d.pss_bytes) + ' PSS, ' + bytes(d.private_bytes) + ' private' : 'no instance running', 'fn-memory'),
      card('Cold starts', String(d.cold_starts), Object.entries(d.errors || {}).map(([c, n]) => c + ': ' + n).join(', ') || 'no errors'));
    updateCharts(b);
    fill($('fn-timeline'), d.timeline.slice().reverse().map((e) => h('li', { class: 'ev-' + e.kind },
      h('time', { datetime: e.time, text: timeText(e.time) }), h('span', { class: 'kind', text: e.kind }), h('span', { text: e.text }))));
    if (!d.timeline.length) $('fn-timeline').append(h('li', { class: 'muted', text: 'Nothing yet.' }));
    table($('fn-coldstarts'), ['When', 'Instance', 'From zero', 'Start', 'Load', 'First inference', 'Total'],
      d.recent_cold_starts.slice().reverse().map((c) => [timeText(c.time), c.pid, c.from_zero ? 'yes' : 'no', durText(c.start), durText(c.load),
        c.first_inference ? durText(c.first_inference) : '–', durText(c.start + c.load + c.first_inference)]));
    table($('fn-instances'), ['PID', 'Address', 'vCPU', 'In flight', 'RSS', 'PSS'],
      d.instance_list.map((i) => [i.pid, i.addr, i.vcpu, i.in_flight, bytes(i.rss_bytes), bytes(i.pss_bytes)]));
    const md = d.metadata || {};
    const tensors = (list) => (list || []).map((t) => t.name + ' ' + t.datatype + ' [' + (t.shape || []).join(', ') + ']').join('; ') || '–';
    fill($('fn-model'), h('dl', { class: 'facts' },
      h('dt', { text: 'Inputs' }), h('dd', { text: tensors(md.inputs) }),
      h('dt', { text: 'Outputs' }), h('dd', { text: tensors(md.outputs) }),
      h('dt', { text: 'Size' }), h('dd', { text: bytes(d.model_bytes) }),
      h('dt', { text: 'Shared (page cache)' }), h('dd', { text: bytes(d.shared_bytes) }),
      h('dt', { text: 'Private (instances)' }), h('dd', { text: bytes(d.private_bytes) }),
      h('dt', { text: 'Batching' }), h('dd', { text: d.batch || 'off' }),
      h('dt', { text: 'Deployed' }), h('dd', { text: new Date(d.created).toLocaleString() })));
    table($('fn-errors'), ['When', 'Status', 'Message'], d.recent_errors.slice().reverse().map((e) => [timeText(e.time), e.status, e.message]));
    const log = $('fn-log');
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = d.log.join('\n');
    if (atEnd) log.scrollTop = log.scrollHeight;
  }

  function table(el, head, rows) {
    fill(el, h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col', text: c })))),
      h('tbody', {}, rows.length ? rows.map((r) => h('tr', {}, r.map((c) => h('td', { text: c })))) : h('tr', {}, h('td', { colspan: head.length, class: 'muted', text: 'None.' }))));
  }

  // ---- charts -------------------------------------------------------------------------
  const CHARTS = [
    // main is the series whose newest value the chart's data-last holds.
    { id: 'chart-latency', main: 2, series: [['p50', 'p50_ms', '#2563eb'], ['p95', 'p95_ms', '#b45309'], ['p99', 'p99_ms', '#dc2626']], slo: true },
    { id: 'chart-rate', main: 0, series: [['requests/s', 'rate', '#047857'], ['errors/s', 'errors', '#dc2626']] },
    { id: 'chart-capacity', main: 0, series: [['vCPUs', 'vcpus', '#7c3aed'], ['instances', 'instances', '#0e7490']] },
    { id: 'chart-memory', main: 0, series: [['RSS MiB', 'rss_mb', '#c2410c'], ['PSS MiB', 'pss_mb', '#2563eb']] },
  ];

  function destroyCharts() {
    for (const c of state.charts) c.plot.destroy();
    state.charts = [];
  }

  function makeCharts(b) {
    if (!window.uPlot) return;
    for (const spec of CHARTS) {
      const box = $(spec.id);
      const series = [{}].concat(spec.series.map(([label, , stroke]) => ({ label, stroke, width: 2, points: { show: false } })));
      if (spec.slo && b.slo) series.push({ label: 'SLO', stroke: '#111827', dash: [6, 4], width: 1, points: { show: false } });
      // At least the last minute on the x axis, so that a new function's
      // first seconds do not fill the chart; zero at the bottom of y.
      const scales = {
        x: { time: true, range: (u, min, max) => [Math.min(min, max - 60), max] },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      };
      const plot = new uPlot({ width: plotWidth(box), height: 180, series, legend: { live: false }, scales, axes: [{}, { size: 50 }] },
        seriesData(spec, b), box.querySelector('.plot'));
      state.charts.push({ spec, plot, box });
    }
  }

  function plotWidth(box) { return Math.max(260, Math.floor(box.clientWidth || 400) - 4); }

  // seriesData builds uPlot's columns from the history: a second the gateway
  // kept no sample for was idle, drawn as zero.
  function seriesData(spec, b) {
    const hs = state.history.get(state.route.fn) || [];
    const xs = [];
    const cols = spec.series.map(() => []);
    let prev = null;
    const push = (t, s) => { xs.push(t); spec.series.forEach(([, field], i) => cols[i].push(s ? s[field] || 0 : 0)); };
    for (const s of hs) {
      if (prev !== null && s.t - prev > 1) { push(prev + 1, null); if (s.t - 1 > prev + 1) push(s.t - 1, null); }
      push(s.t, s);
      prev = s.t;
    }
    const data = [xs].concat(cols);
    if (spec.slo && b.slo) data.push(xs.map(() => b.slo / 1e6));
    return data;
  }

  function updateCharts(b) {
    for (const c of state.charts) {
      const data = seriesData(c.spec, b);
      c.plot.setData(data);
      const main = data[1 + c.spec.main];
      c.box.dataset.points = String(data[0].length);
      // The newest value of the chart's main series (p99, requests/s, ...),
      // for a reader and for the browser tests.
      c.box.dataset.last = String(main[main.length - 1] || 0);
    }
  }

  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { for (const c of state.charts) c.plot.setSize({ width: plotWidth(c.box), height: 180 }); }, 100);
  });

  connect();
  render();
})();
