/*
 * socket2ser dashboard: plain ES2020, no build step, no libraries. Uses only docs/api.md.
 *
 * The server's Content-Security-Policy allows scripts and styles from this origin only, so there
 * is no inline script or style, no on*="" attribute, no eval, and every look is a CSS class or a
 * data attribute. All text from the server goes in through textContent, never innerHTML.
 *
 * Token: `#token=…` in the URL is moved into sessionStorage ("socket2ser-token") and removed
 * from the address bar; it goes out as `Authorization: Bearer …` on every request, and as
 * `?token=` on /api/live only when /api/overview says `readsNeedToken`.
 *
 * Hooks for tests (stable ids, classes and data attributes):
 *   #live-status[data-state]        connecting | connected | reconnecting | stale | closed
 *   #token-state                    shown when the page has no token
 *   #message[data-kind][data-status] the last error (kind "error") or notice (kind "info");
 *                                   hidden when empty; .message-text holds the text;
 *                                   data-status is the HTTP status of a failed request (or "")
 *   #version                        the server's version
 *   #links                          the link cards
 *     .link-card[data-link=ID][data-state=STATE][data-role][data-device][data-updated=TIME]
 *                                   .selected on the one the detail panel shows; a click selects
 *       .link-id  .role  .link-state[data-state]  .link-since ("for 3 min 12 s")
 *       .link-stop (button, only when canStop)  .link-error (when there is an error)
 *       [data-field=rtt|util|line|goodput|bytes|retransmissions|crc|frame|ber|streams|forwards]
 *   #link-select                    the selected link (option value = link id)
 *   #chart  canvas [data-link][data-samples=N visible samples][data-drawn=draw count]
 *   #streams tbody tr[data-stream=ID][data-link][data-state]; td[data-col=KEY];
 *                                   button.stream-reset in each row
 *   #streams th[data-sort=KEY][aria-sort]  click to sort; #stream-filter  text filter;
 *   #streams-count, #streams-empty
 *   #forwards li[data-kind][data-spec]  .fw-text, button.forward-remove
 *   #forward-form  #forward-kind  #forward-spec  #forward-add
 *   #start-form  #port-select (option[data-kind] value = path)  #port-refresh  #port-details
 *     #device  #baud (list=#baud-rates)  #data-bits  #parity  #stop-bits  #flow
 *     input[name=role] (#role-s, #role-c)  #listen (C)  #target (S)  #start-forwards
 *     #start-button  #start-format
 *   #events li[data-seq][data-level][data-kind][data-link], newest first, at most 500;
 *     .ev-time .ev-level .ev-link .ev-msg
 */
'use strict';

(() => {
  const TOKEN_KEY = 'socket2ser-token';
  const SELECTED_KEY = 'socket2ser-selected';
  const HISTORY_MS = 10 * 60 * 1000;
  const MAX_EVENTS = 500;
  const STALE_MS = 5000;
  const TOKEN_HELP = 'this page needs the token: open the URL socket2ser printed (http://127.0.0.1:PORT/#token=…)';

  const state = {
    token: null,
    readsNeedToken: false,
    links: new Map(),          // id -> Link, in the server's order
    streams: {},               // id -> [Stream], from the last snapshot
    history: new Map(),        // id -> [Sample], oldest first
    historyRequested: new Set(),
    selected: null,
    serverTime: null,          // the last snapshot's time (server clock)
    lastSnapshotAt: 0,         // performance.now() of the last snapshot
    liveState: 'connecting',
    liveWasDown: false,
    liveRetry: 0,
    es: null,
    events: new Map(),         // seq -> li
    maxSeq: 0,
    ports: [],
    sort: { key: 'id', dir: 1 },
    filter: '',
    cards: new Map(),          // id -> card parts
    rows: new Map(),           // stream id -> row parts
    rowsLink: null,
    drawCount: 0,
    messageTimer: 0,
  };

  const $ = (selector) => document.querySelector(selector);

  // ---------------------------------------------------------------- helpers

  /** Makes an element; `props.text` sets textContent, `props.class` the class, `props.data` data-*. */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null) continue;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'class') node.className = value;
      else if (key === 'data') for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
      else if (key.startsWith('on')) throw new Error('no handler attributes');
      else node.setAttribute(key, String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function setText(node, text) {
    const value = String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function setData(node, key, value) {
    const text = value === null || value === undefined ? '' : String(value);
    if (node.dataset[key] !== text) node.dataset[key] = text;
  }

  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

  function fmtScaled(value, unit) {
    if (!isNum(value)) return '—';
    const abs = Math.abs(value);
    if (abs < 1000) return `${Math.round(value)} ${unit}`;
    const units = ['K', 'M', 'G', 'T'];
    let v = value / 1000;
    let i = 0;
    while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
    const digits = Math.abs(v) < 10 ? 2 : Math.abs(v) < 100 ? 1 : 0;
    return `${v.toFixed(digits)} ${units[i]}${unit}`;
  }
  const fmtRate = (v) => fmtScaled(v, 'B/s');
  const fmtBytes = (v) => fmtScaled(v, 'B');
  const fmtCount = (v) => (isNum(v) ? Math.round(v).toLocaleString('en-US') : '—');
  const fmtPct = (u) => (isNum(u) ? `${(u * 100).toFixed(u >= 0.995 || u === 0 ? 0 : 1)}%` : '—');
  function fmtRtt(ms) {
    if (!isNum(ms)) return '—';
    return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
  }
  function fmtBer(x) {
    if (!isNum(x)) return '—';
    if (x === 0) return '0';
    return x.toExponential(1);
  }
  function fmtDuration(seconds) {
    if (!isNum(seconds)) return '—';
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${s % 60} s`;
    const h = Math.floor(m / 60);
    if (h < 24) return `${h} h ${m % 60} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }
  function fmtAge(seconds) {
    if (!isNum(seconds)) return '—';
    return seconds < 10 ? `${seconds.toFixed(1)} s` : fmtDuration(seconds);
  }
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  function fmtClock(ms) {
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  const roleName = (role) => ({ S: 'S · server', C: 'C · client', link: 'link' }[role] || String(role || '?'));
  const kindName = (kind) => ({
    'usb-serial': 'USB serial', usb: 'USB serial', 'usb-acm': 'USB CDC-ACM', acm: 'USB CDC-ACM',
    'built-in': 'built-in UART', uart: 'built-in UART', pty: 'pseudo-terminal',
    'virtual-cable': 'socket2ser cable end',
  }[kind] || String(kind || 'unknown'));

  function readStorage(key) {
    try { return window.sessionStorage.getItem(key); } catch (e) { return null; }
  }
  function writeStorage(key, value) {
    try {
      if (value === null) window.sessionStorage.removeItem(key);
      else window.sessionStorage.setItem(key, value);
    } catch (e) { /* storage may be off; the page still works for this load */ }
  }

  // ---------------------------------------------------------------- messages

  function showMessage(text, kind = 'error', status = '') {
    const box = $('#message');
    setText(box.querySelector('.message-text'), text);
    box.dataset.kind = kind;
    box.dataset.status = String(status || '');
    box.hidden = false;
    clearTimeout(state.messageTimer);
    if (kind === 'info') state.messageTimer = setTimeout(clearMessage, 5000);
  }
  function clearMessage() {
    const box = $('#message');
    box.hidden = true;
    setText(box.querySelector('.message-text'), '');
    box.dataset.kind = '';
    box.dataset.status = '';
  }
  function showError(action, err) {
    const status = err && err.status ? err.status : '';
    let text = `${action}: ${err && err.message ? err.message : String(err)}`;
    if (status === 401) {
      // The server's own line usually says the same; show it only when it says something else.
      const own = /token/i.test(err.message) ? '' : ` (The server said: ${err.message})`;
      text = `${action}: ${TOKEN_HELP}.${own}`;
    }
    showMessage(text, 'error', status);
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const init = { method, headers, cache: 'no-store', credentials: 'same-origin', redirect: 'error' };
    if (method !== 'GET') headers['Content-Type'] = 'application/json';
    if (body !== undefined) init.body = JSON.stringify(body);
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, `cannot reach socket2ser (${e.message})`);
    }
    const text = response.status === 204 ? '' : await response.text();
    let data = null;
    if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
    if (!response.ok) {
      const message = data && typeof data.error === 'string' && data.error
        ? data.error : `${response.status} ${response.statusText || 'error'}`;
      throw new ApiError(response.status, message);
    }
    return data;
  }

  const linkPath = (id) => `/api/links/${encodeURIComponent(id)}`;

  // ---------------------------------------------------------------- links

  function setLinks(links) {
    const next = new Map();
    for (const link of links || []) if (link && link.id !== undefined) next.set(String(link.id), link);
    state.links = next;
    for (const id of next.keys()) {
      if (!state.historyRequested.has(id)) loadHistory(id);
    }
    for (const id of [...state.history.keys()]) {
      if (!next.has(id)) { state.history.delete(id); state.historyRequested.delete(id); }
    }
    if (state.selected === null || !next.has(state.selected)) {
      const remembered = readStorage(SELECTED_KEY);
      const first = next.keys().next();
      select(remembered && next.has(remembered) ? remembered : (first.done ? null : first.value), false);
    }
  }

  function select(id, render = true) {
    if (state.selected === id) return;
    state.selected = id;
    if (id !== null) writeStorage(SELECTED_KEY, id);
    if (render) renderAll();
  }

  function makeCard(id) {
    const parts = { fields: {} };
    parts.id = el('span', { class: 'link-id', text: id });
    parts.role = el('span', { class: 'role' });
    parts.state = el('span', { class: 'link-state' });
    parts.since = el('span', { class: 'link-since' });
    parts.stop = el('button', { type: 'button', class: 'link-stop danger small', text: 'Stop', title: 'Stop this link' });
    parts.stop.hidden = true;
    parts.stop.addEventListener('click', (event) => { event.stopPropagation(); stopLink(id, parts.stop); });
    parts.sub = el('div', { class: 'link-sub' });
    parts.error = el('div', { class: 'link-error' });
    parts.error.hidden = true;
    const stats = el('dl', { class: 'stats' });
    const field = (key, label, title) => {
      const dd = el('dd', { data: { field: key } });
      stats.append(el('dt', { text: label, title }), dd);
      parts.fields[key] = dd;
      return dd;
    };
    const util = field('util', 'utilisation', 'line bytes per second as a share of the line rate');
    util.classList.add('wide');
    parts.utilOut = el('span', { class: 'util' }, el('span', { class: 'arrow-out', text: 'out' }));
    parts.utilOutText = el('span', { class: 'pct' });
    parts.utilOutMeter = el('meter', { min: '0', max: '1' });
    parts.utilOut.append(parts.utilOutText, parts.utilOutMeter);
    parts.utilIn = el('span', { class: 'util' }, el('span', { class: 'arrow-in', text: 'in' }));
    parts.utilInText = el('span', { class: 'pct' });
    parts.utilInMeter = el('meter', { min: '0', max: '1' });
    parts.utilIn.append(parts.utilInText, parts.utilInMeter);
    parts.unpaced = el('span', { text: 'unpaced line' });
    util.append(parts.utilOut, parts.utilIn, parts.unpaced);
    field('line', 'line', 'line bytes per second over the last second').classList.add('wide');
    field('goodput', 'goodput', 'payload bytes per second over the last second').classList.add('wide');
    field('bytes', 'payload', 'payload bytes carried since the start').classList.add('wide');
    field('rtt', 'RTT', 'round-trip time on the line');
    field('frame', 'frame', 'the frame body size the sender aims at now');
    field('retransmissions', 'retransmits');
    field('crc', 'CRC errors');
    field('ber', 'bit errors', 'estimated bit error rate: frames that failed their CRC per bit received').classList.add('wide');
    field('streams', 'streams', 'streams open now, and connections since the start').classList.add('wide');
    field('forwards', 'forwards').classList.add('wide');

    const head = el('div', { class: 'card-head' }, parts.id, parts.role, parts.state, parts.since, parts.stop);
    parts.root = el('article', { class: 'link-card', tabindex: '0', data: { link: id } },
      head, parts.sub, parts.error, stats);
    parts.root.addEventListener('click', () => select(id));
    parts.root.addEventListener('keydown', (event) => {
      if ((event.key === 'Enter' || event.key === ' ') && event.target === parts.root) {
        event.preventDefault();
        select(id);
      }
    });
    return parts;
  }

  const paced0 = (link) => isNum(link.lineRate) && link.lineRate > 0;

  function inOut(out, inn, format) {
    return `out ${format(out)} · in ${format(inn)}`;
  }

  function updateCard(parts, link) {
    const root = parts.root;
    setData(root, 'state', link.state);
    setData(root, 'role', link.role);
    setData(root, 'device', link.device);
    setData(root, 'updated', state.serverTime ?? '');
    root.classList.toggle('selected', state.selected === String(link.id));
    setText(parts.role, roleName(link.role));
    setText(parts.state, link.state || '?');
    setData(parts.state, 'state', link.state);
    const now = state.serverTime ?? Date.now();
    setText(parts.since, isNum(link.stateSince) ? `for ${fmtDuration((now - link.stateSince) / 1000)}` : '');
    parts.stop.hidden = !link.canStop;
    const serial = link.serial ? `${link.serial}${paced0(link) ? ` (${fmtRate(link.lineRate)})` : ', unpaced'}` : null;
    const sub = [link.device, serial, link.origin ? `from ${link.origin}` : null,
      link.deviceOpen === false ? 'device closed' : null].filter(Boolean).join(' · ');
    setText(parts.sub, sub);
    const error = link.error ? String(link.error) : '';
    setText(parts.error, error ? (link.state === 'failed' ? `failed: ${error} (trying again every 2 s)` : error) : '');
    parts.error.hidden = !error;

    const f = parts.fields;
    setText(f.rtt, fmtRtt(link.rttMs));
    const util = link.utilisation || {};
    const paced = isNum(link.lineRate) && link.lineRate > 0;
    parts.utilOut.hidden = !paced;
    parts.utilIn.hidden = !paced;
    parts.unpaced.hidden = paced;
    if (paced) {
      setText(parts.utilOutText, fmtPct(util.out));
      setText(parts.utilInText, fmtPct(util.in));
      parts.utilOutMeter.value = isNum(util.out) ? Math.min(1, Math.max(0, util.out)) : 0;
      parts.utilInMeter.value = isNum(util.in) ? Math.min(1, Math.max(0, util.in)) : 0;
    }
    const rates = link.lineRates || {};
    setText(f.line, inOut(rates.out, rates.in, fmtRate));
    const goodput = link.goodput || {};
    setText(f.goodput, inOut(goodput.out, goodput.in, fmtRate));
    const payload = link.payloadBytes || {};
    setText(f.bytes, inOut(payload.out, payload.in, fmtBytes));
    setText(f.retransmissions, fmtCount(link.retransmissions));
    setText(f.crc, fmtCount(link.crcErrors));
    setText(f.frame, isNum(link.frameSize) ? `${fmtCount(link.frameSize)} B` : '—');
    setText(f.ber, fmtBer(link.bitErrorRate));
    setText(f.streams, `${fmtCount(link.streamsOpen)} open, ${fmtCount(link.connectionsTotal)} since the start`);
    const forwards = Array.isArray(link.forwards) ? link.forwards : [];
    setText(f.forwards, forwards.length ? forwards.map((fw) => fw.text || `-${fw.kind} ${fw.spec}`).join(', ') : 'none');
  }

  function renderLinks() {
    const container = $('#links');
    $('#links-empty').hidden = state.links.size > 0;
    for (const [id, parts] of [...state.cards]) {
      if (!state.links.has(id)) { parts.root.remove(); state.cards.delete(id); }
    }
    let index = 0;
    for (const [id, link] of state.links) {
      let parts = state.cards.get(id);
      if (!parts) { parts = makeCard(id); state.cards.set(id, parts); }
      updateCard(parts, link);
      const at = container.children[index + 1]; // after #links-empty
      if (at !== parts.root) container.insertBefore(parts.root, at || null);
      index += 1;
    }
    renderLinkSelect();
  }

  function renderLinkSelect() {
    const selectBox = $('#link-select');
    const wanted = [...state.links.values()].map((link) => [String(link.id), `${link.id} (${link.role}, ${link.state})`]);
    if (wanted.length === 0) wanted.push(['', 'no links']);
    const current = [...selectBox.options].map((o) => [o.value, o.textContent]);
    if (JSON.stringify(current) !== JSON.stringify(wanted)) {
      selectBox.replaceChildren(...wanted.map(([value, text]) => el('option', { value, text })));
    }
    selectBox.value = state.selected ?? '';
    selectBox.disabled = state.links.size === 0;
  }

  async function stopLink(id, button) {
    button.disabled = true;
    try {
      await api('DELETE', linkPath(id));
      showMessage(`link ${id} stopped`, 'info');
    } catch (err) {
      showError(`stopping link ${id}`, err);
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- history and the chart

  function addSamples(id, samples) {
    const valid = (samples || []).filter((s) => s && isNum(s.time));
    if (valid.length === 0) return;
    let list = state.history.get(id) || [];
    const last = list.length ? list[list.length - 1].time : -Infinity;
    if (valid.every((s, i) => s.time > (i === 0 ? last : valid[i - 1].time))) {
      list.push(...valid);
    } else {
      const byTime = new Map(list.map((s) => [s.time, s]));
      for (const s of valid) byTime.set(s.time, s);
      list = [...byTime.values()].sort((a, b) => a.time - b.time);
    }
    const newest = list[list.length - 1].time;
    const firstKept = list.findIndex((s) => s.time >= newest - HISTORY_MS - 2000);
    if (firstKept > 0) list = list.slice(firstKept);
    state.history.set(id, list);
  }

  async function loadHistory(id) {
    state.historyRequested.add(id);
    try {
      const samples = await api('GET', `${linkPath(id)}/history`);
      if (!state.links.has(id)) return;
      addSamples(id, Array.isArray(samples) ? samples : []);
      if (state.selected === id) drawChart();
    } catch (err) {
      if (err.status !== 404 && err.status !== 401) showError(`loading the history of ${id}`, err);
    }
  }

  function niceStep(raw) {
    const power = 10 ** Math.floor(Math.log10(raw));
    const fraction = raw / power;
    const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 2.5 ? 2.5 : fraction <= 5 ? 5 : 10;
    return nice * power;
  }

  function axisRate(value) {
    if (value === 0) return '0';
    if (value < 1000) return `${+value.toFixed(1)} B/s`;
    if (value < 1e6) return `${+(value / 1000).toFixed(2)} KB/s`;
    return `${+(value / 1e6).toFixed(2)} MB/s`;
  }

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function drawChart() {
    const canvas = $('#chart');
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, width, height);

    const id = state.selected;
    const samples = id === null ? [] : (state.history.get(id) || []);
    const end = state.serverTime ?? (samples.length ? samples[samples.length - 1].time : Date.now());
    const start = end - HISTORY_MS;
    const visible = samples.filter((s) => s.time >= start && s.time <= end + 1000);

    const left = 66;
    const right = 42;
    const top = 12;
    const bottom = 22;
    const plotW = Math.max(10, width - left - right);
    const plotH = Math.max(10, height - top - bottom);
    const x = (t) => left + ((t - start) / HISTORY_MS) * plotW;

    let max = 0;
    for (const s of visible) max = Math.max(max, isNum(s.out) ? s.out : 0, isNum(s.in) ? s.in : 0);
    const step = niceStep(Math.max(max, 1000) / 4); // at least 0–1 KB/s, so an idle line reads as idle
    const yMax = Math.max(step, Math.ceil(max / step) * step);
    const y = (v) => top + plotH - (Math.max(0, v) / yMax) * plotH;
    const yUtil = (u) => top + plotH - Math.min(1.05, Math.max(0, u)) * plotH;

    const muted = cssVar('--muted', '#5f6b7a');
    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    // grid and rate axis (left)
    ctx.strokeStyle = '#e6e9ee';
    ctx.fillStyle = muted;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let v = 0; v <= yMax + step / 2; v += step) {
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, yy); ctx.lineTo(left + plotW, yy); ctx.stroke();
      ctx.fillText(axisRate(v), left - 6, yy);
    }
    // utilisation axis (right), 0–100 %
    ctx.textAlign = 'left';
    for (let u = 0; u <= 1.0001; u += 0.25) {
      ctx.fillText(`${Math.round(u * 100)}%`, left + plotW + 6, yUtil(u));
    }
    // time axis
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (let m = 10; m >= 0; m -= 2) {
      const xx = Math.round(x(end - m * 60000)) + 0.5;
      ctx.strokeStyle = '#eef0f3';
      ctx.beginPath(); ctx.moveTo(xx, top); ctx.lineTo(xx, top + plotH); ctx.stroke();
      ctx.fillText(m === 0 ? 'now' : `−${m} min`, Math.min(xx, left + plotW - 10), top + plotH + 5);
    }
    ctx.strokeStyle = '#b9c1cc';
    ctx.strokeRect(left + 0.5, top + 0.5, plotW, plotH);

    const series = (value, project, color, dashed, widthPx) => {
      ctx.save();
      ctx.beginPath();
      ctx.rect(left, top, plotW, plotH);
      ctx.clip();
      ctx.strokeStyle = color;
      ctx.lineWidth = widthPx;
      ctx.setLineDash(dashed ? [5, 4] : []);
      ctx.lineJoin = 'round';
      ctx.beginPath();
      let previous = null;
      for (const s of visible) {
        const v = value(s);
        if (!isNum(v)) { previous = null; continue; }
        const px = x(s.time);
        const py = project(v);
        if (previous === null || s.time - previous > 2500) ctx.moveTo(px, py);
        else ctx.lineTo(px, py);
        previous = s.time;
      }
      ctx.stroke();
      ctx.restore();
    };
    const outColor = cssVar('--out', '#1f6fd1');
    const inColor = cssVar('--in', '#d9731f');
    series((s) => s.utilisationOut, yUtil, outColor, true, 1.2);
    series((s) => s.utilisationIn, yUtil, inColor, true, 1.2);
    series((s) => s.out, y, outColor, false, 2);
    series((s) => s.in, y, inColor, false, 2);

    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    ctx.fillStyle = muted;
    if (id === null) ctx.fillText('no link selected', left + 8, top + 6);
    else if (visible.length === 0) ctx.fillText(`no samples for ${id} yet`, left + 8, top + 6);

    state.drawCount += 1;
    canvas.dataset.link = id ?? '';
    canvas.dataset.samples = String(visible.length);
    canvas.dataset.drawn = String(state.drawCount);
  }

  // ---------------------------------------------------------------- streams

  const STREAM_COLUMNS = [
    ['id', (s) => String(s.id), ''],
    ['forward', (s) => s.forward ?? '', ''],
    ['client', (s) => s.client ?? '', ''],
    ['target', (s) => s.target ?? '', ''],
    ['bytesOut', (s) => fmtBytes(s.bytesOut), 'num'],
    ['bytesIn', (s) => fmtBytes(s.bytesIn), 'num'],
    ['rateOut', (s) => fmtRate(s.rateOut), 'num'],
    ['rateIn', (s) => fmtRate(s.rateIn), 'num'],
    ['ageSeconds', (s) => fmtAge(s.ageSeconds), 'num'],
    ['state', (s) => s.state ?? '', 'st'],
  ];

  function streamMatches(stream, filter) {
    if (!filter) return true;
    const text = [stream.id, stream.forward, stream.client, stream.target, stream.state].join(' ').toLowerCase();
    return filter.split(/\s+/).every((word) => text.includes(word));
  }

  function compareStreams(a, b) {
    const { key, dir } = state.sort;
    const va = a[key];
    const vb = b[key];
    let result;
    if (typeof va === 'number' && typeof vb === 'number') result = va - vb;
    else result = String(va ?? '').localeCompare(String(vb ?? ''), undefined, { numeric: true });
    if (result === 0) result = Number(a.id) - Number(b.id);
    return result * dir;
  }

  function makeRow(linkId, stream) {
    const parts = { cells: {} };
    parts.tr = el('tr', { data: { stream: stream.id, link: linkId } });
    for (const [key, , cls] of STREAM_COLUMNS) {
      const td = el('td', { class: cls || null, data: { col: key } });
      parts.cells[key] = td;
      parts.tr.append(td);
    }
    parts.reset = el('button', { type: 'button', class: 'stream-reset small danger', text: 'Reset', title: 'Reset this stream (both sockets see a reset)' });
    parts.tr.append(el('td', { class: 'actions' }, parts.reset));
    return parts;
  }

  function renderStreams() {
    const tbody = $('#streams tbody');
    const id = state.selected;
    if (state.rowsLink !== id) {
      tbody.replaceChildren();
      state.rows.clear();
      state.rowsLink = id;
    }
    const all = id !== null && Array.isArray(state.streams[id]) ? state.streams[id] : [];
    const shown = all.filter((s) => streamMatches(s, state.filter)).sort(compareStreams);
    const keep = new Set(shown.map((s) => String(s.id)));
    for (const [sid, parts] of [...state.rows]) {
      if (!keep.has(sid)) { parts.tr.remove(); state.rows.delete(sid); }
    }
    shown.forEach((stream, index) => {
      const sid = String(stream.id);
      let parts = state.rows.get(sid);
      if (!parts) { parts = makeRow(id, stream); state.rows.set(sid, parts); }
      for (const [key, format] of STREAM_COLUMNS) setText(parts.cells[key], format(stream));
      setData(parts.tr, 'state', stream.state);
      const at = tbody.children[index];
      if (at !== parts.tr) tbody.insertBefore(parts.tr, at || null);
    });
    const count = all.length === shown.length ? `${all.length}` : `${shown.length} of ${all.length}`;
    setText($('#streams-count'), id === null ? '' : `(${count})`);
    $('#streams-empty').hidden = shown.length > 0;
    setText($('#streams-empty'), all.length > 0 ? 'No stream matches the filter.' : 'No streams.');
    for (const th of document.querySelectorAll('#streams th[data-sort]')) {
      if (th.dataset.sort === state.sort.key) th.setAttribute('aria-sort', state.sort.dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
  }

  async function resetStream(linkId, streamId, button) {
    button.disabled = true;
    try {
      await api('POST', `${linkPath(linkId)}/streams/${encodeURIComponent(streamId)}/reset`);
      showMessage(`stream ${streamId} of ${linkId} reset`, 'info');
    } catch (err) {
      button.disabled = false;
      showError(`resetting stream ${streamId}`, err);
    }
  }

  // ---------------------------------------------------------------- forwards

  function renderForwards() {
    const list = $('#forwards');
    const link = state.selected === null ? null : state.links.get(state.selected);
    const forwards = link && Array.isArray(link.forwards) ? link.forwards : [];
    const wanted = forwards.map((fw) => `${fw.kind}\u0000${fw.spec}\u0000${fw.text ?? ''}`);
    const current = [...list.children].map((li) => li.dataset.key);
    if (JSON.stringify(wanted) !== JSON.stringify(current) || list.dataset.link !== (state.selected ?? '')) {
      list.dataset.link = state.selected ?? '';
      list.replaceChildren(...forwards.map((fw, i) => {
        const remove = el('button', { type: 'button', class: 'forward-remove small danger', text: 'Remove' });
        remove.addEventListener('click', () => removeForward(link.id, fw, remove));
        return el('li', { data: { kind: fw.kind, spec: fw.spec, key: wanted[i] } },
          el('span', { class: 'fw-text', text: fw.text || `-${fw.kind} ${fw.spec}` }), remove);
      }));
      if (forwards.length === 0) list.append(el('li', { class: 'empty', data: { key: '' }, text: link ? 'No forwards.' : 'No link selected.' }));
    }
    $('#forward-add').disabled = !link;
  }

  function applyForwards(linkId, forwards) {
    const link = state.links.get(linkId);
    if (link && Array.isArray(forwards)) {
      link.forwards = forwards;
      renderAll();
    }
  }

  async function removeForward(linkId, forward, button) {
    button.disabled = true;
    const query = `kind=${encodeURIComponent(forward.kind)}&spec=${encodeURIComponent(forward.spec)}`;
    try {
      const forwards = await api('DELETE', `${linkPath(linkId)}/forwards?${query}`);
      applyForwards(String(linkId), forwards);
      showMessage(`removed ${forward.text || `-${forward.kind} ${forward.spec}`} from ${linkId}`, 'info');
    } catch (err) {
      button.disabled = false;
      showError(`removing ${forward.text || forward.spec}`, err);
    }
  }

  async function addForward(event) {
    event.preventDefault();
    const linkId = state.selected;
    if (linkId === null) { showMessage('select a link first'); return; }
    const kind = $('#forward-kind').value;
    const spec = $('#forward-spec').value.trim();
    if (!spec) { showMessage('write the forward\'s spec, e.g. 8080:localhost:80 (or 1080 for -D)'); return; }
    const button = $('#forward-add');
    button.disabled = true;
    try {
      const forwards = await api('POST', `${linkPath(linkId)}/forwards`, { kind, spec });
      $('#forward-spec').value = '';
      applyForwards(linkId, forwards);
      showMessage(`added -${kind} ${spec} to ${linkId}`, 'info');
    } catch (err) {
      showError(`adding -${kind} ${spec}`, err);
    } finally {
      button.disabled = state.selected === null;
    }
  }

  // ---------------------------------------------------------------- events

  function addEvents(events) {
    const list = $('#events');
    for (const event of events || []) {
      if (!event || !isNum(event.seq) || state.events.has(event.seq)) continue;
      const time = isNum(event.time) ? event.time : Date.now();
      const li = el('li', { data: { seq: event.seq, time: event.time, level: event.level || 'info', kind: event.kind || 'log', link: event.link ?? '' }, title: new Date(time).toISOString() },
        el('span', { class: 'ev-time', text: fmtClock(time) }),
        el('span', { class: 'ev-level', text: event.level || 'info' }),
        el('span', { class: 'ev-link', text: event.link ?? '', title: event.link ?? '' }),
        el('span', { class: 'ev-msg', text: event.message ?? '' }));
      // newest (highest seq) first
      let before = null;
      if (event.seq < state.maxSeq) {
        for (const child of list.children) {
          if (Number(child.dataset.seq) < event.seq) { before = child; break; }
        }
      } else {
        before = list.firstElementChild;
      }
      list.insertBefore(li, before);
      state.events.set(event.seq, li);
      state.maxSeq = Math.max(state.maxSeq, event.seq);
    }
    while (list.children.length > MAX_EVENTS) {
      const oldest = list.lastElementChild;
      state.events.delete(Number(oldest.dataset.seq));
      oldest.remove();
    }
    setText($('#events-count'), `(${list.children.length})`);
  }

  function clearEvents() {
    $('#events').replaceChildren();
    state.events.clear();
    state.maxSeq = 0;
  }

  async function loadEvents(resync) {
    try {
      const events = await api('GET', '/api/events');
      const list = Array.isArray(events) ? events : [];
      const newest = list.reduce((m, e) => Math.max(m, isNum(e.seq) ? e.seq : 0), 0);
      // The server started again: its numbers began anew (fewer of them, or the same number
      // on another event).
      const renumbered = list.some((e) => state.events.has(e.seq) && state.events.get(e.seq).dataset.time !== String(e.time));
      if (resync && state.maxSeq > 0 && (newest < state.maxSeq || renumbered)) clearEvents();
      addEvents(list);
    } catch (err) {
      if (err.status !== 401) showError('loading the event log', err);
    }
  }

  // ---------------------------------------------------------------- live channel

  function setLive(liveState, text) {
    state.liveState = liveState;
    const box = $('#live-status');
    box.dataset.state = liveState;
    const label = text || {
      connecting: 'connecting…', connected: 'live', reconnecting: 'reconnecting…', stale: 'no updates', closed: 'disconnected',
    }[liveState];
    setText(box.querySelector('.live-text'), label);
  }

  function connectLive() {
    if (state.es) state.es.close();
    state.es = null;
    if (state.readsNeedToken && !state.token) {
      setLive('closed', 'needs the token');
      return;
    }
    let url = '/api/live';
    if (state.readsNeedToken && state.token) url += `?token=${encodeURIComponent(state.token)}`;
    const source = new EventSource(url);
    state.es = source;
    source.addEventListener('open', () => {
      state.liveRetry = 0;
      setLive('connected');
      if (state.liveWasDown) {
        state.liveWasDown = false;
        loadEvents(true);
      }
    });
    source.addEventListener('snapshot', (message) => {
      let snapshot;
      try { snapshot = JSON.parse(message.data); } catch (e) { return; }
      onSnapshot(snapshot);
    });
    source.addEventListener('log', (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      addEvents([event]);
    });
    source.addEventListener('error', () => {
      state.liveWasDown = true;
      if (source.readyState === EventSource.CLOSED) {
        // The server answered with an error (or not an event stream): EventSource gives up,
        // so try again ourselves, more slowly each time, after asking the overview again.
        source.close();
        if (state.es === source) state.es = null;
        setLive('closed', 'disconnected, retrying…');
        const delay = Math.min(10000, 1000 * 2 ** state.liveRetry);
        state.liveRetry += 1;
        setTimeout(() => { loadOverview().finally(connectLive); }, delay);
      } else {
        setLive('reconnecting');
      }
    });
  }

  function onSnapshot(snapshot) {
    if (!snapshot || typeof snapshot !== 'object') return;
    if (isNum(snapshot.time)) state.serverTime = snapshot.time;
    state.lastSnapshotAt = performance.now();
    if (state.liveState !== 'connected') setLive('connected');
    setLinks(Array.isArray(snapshot.links) ? snapshot.links : []);
    state.streams = snapshot.streams && typeof snapshot.streams === 'object' ? snapshot.streams : {};
    for (const [id, sample] of Object.entries(snapshot.samples || {})) {
      if (state.links.has(id)) addSamples(id, [sample]);
    }
    renderAll();
  }

  function watchStale() {
    if (state.liveState === 'connected' && state.lastSnapshotAt > 0) {
      const silent = performance.now() - state.lastSnapshotAt;
      if (silent > STALE_MS) setLive('stale', `no updates for ${Math.round(silent / 1000)} s`);
    } else if (state.liveState === 'stale') {
      const silent = performance.now() - state.lastSnapshotAt;
      setLive('stale', `no updates for ${Math.round(silent / 1000)} s`);
    }
  }

  async function loadOverview() {
    try {
      const overview = await api('GET', '/api/overview');
      state.readsNeedToken = Boolean(overview && overview.readsNeedToken);
      setText($('#version'), overview && overview.version ? `v${String(overview.version).replace(/^v/, '')}` : '');
      if (!state.serverTime) setLinks(Array.isArray(overview.links) ? overview.links : []);
      renderAll();
    } catch (err) {
      if (err.status === 401) state.readsNeedToken = true;
      showError('loading the overview', err);
    }
  }

  // ---------------------------------------------------------------- ports and the start form

  function portSummary(port) {
    const parts = [port.path, kindName(port.kind)];
    if (port.vendorID && port.productID) parts.push(`${port.vendorID}:${port.productID}`);
    const name = [port.manufacturer, port.product].filter(Boolean).join(' ');
    if (name) parts.push(name);
    if (port.serialNumber) parts.push(`SN ${port.serialNumber}`);
    if (isNum(port.cableProcess)) parts.push(`pid ${port.cableProcess}`);
    const user = [...state.links.values()].find((link) => link.device === port.path);
    if (user) parts.push(`in use by ${user.id}`);
    return parts.join(' · ');
  }

  function portDetails(port) {
    if (!port) return '';
    const lines = [`${kindName(port.kind)}${port.driver ? ` (driver ${port.driver})` : ''}`];
    if (port.vendorID || port.productID) lines.push(`USB ${port.vendorID ?? '?'}:${port.productID ?? '?'}`);
    const name = [port.manufacturer, port.product].filter(Boolean).join(' ');
    if (name) lines.push(name);
    if (port.serialNumber) lines.push(`serial number ${port.serialNumber}`);
    for (const path of port.byID || []) lines.push(path);
    for (const path of port.byPath || []) lines.push(path);
    if (isNum(port.cableProcess)) lines.push(`an end of socket2ser cable (pid ${port.cableProcess})`);
    return lines.join('\n');
  }

  function renderPorts() {
    const box = $('#port-select');
    const previous = box.value || $('#device').value.trim();
    const options = [el('option', { value: '', text: state.ports.length ? `— ${state.ports.length} serial device${state.ports.length === 1 ? '' : 's'}: choose one —` : '— no serial devices found —' })];
    for (const port of state.ports) {
      options.push(el('option', { value: port.path, text: portSummary(port), data: { kind: port.kind ?? '' } }));
    }
    box.replaceChildren(...options);
    box.value = state.ports.some((p) => p.path === previous) ? previous : '';
    showPortDetails();
  }

  function showPortDetails() {
    const port = state.ports.find((p) => p.path === $('#port-select').value);
    setText($('#port-details'), portDetails(port));
  }

  async function loadPorts() {
    const button = $('#port-refresh');
    button.disabled = true;
    try {
      const ports = await api('GET', '/api/ports');
      state.ports = Array.isArray(ports) ? ports.filter((p) => p && typeof p.path === 'string') : [];
      renderPorts();
    } catch (err) {
      if (err.status !== 401) showError('listing the serial devices', err);
    } finally {
      button.disabled = false;
    }
  }

  /** Reads "-L 8080:host:80", "-L8080:host:80", "L 8080:host:80", "-D 1080", several a line. */
  function parseForwards(text) {
    const tokens = text.split('\n').map((line) => line.replace(/#.*$/, '')).join(' ').split(/\s+/).filter(Boolean);
    const forwards = [];
    for (let i = 0; i < tokens.length; i += 1) {
      const token = tokens[i];
      let match = /^-{0,2}([LRD])$/.exec(token);
      if (match) {
        const spec = tokens[i + 1];
        if (!spec || /^-{1,2}[LRD]/.test(spec)) throw new Error(`-${match[1]} needs a spec after it`);
        forwards.push({ kind: match[1], spec });
        i += 1;
        continue;
      }
      match = /^-([LRD])(.+)$/.exec(token);
      if (match) { forwards.push({ kind: match[1], spec: match[2] }); continue; }
      throw new Error(`'${token}' is not a forward: write -L [bind:]port:host:hostport, -R [bind:]port:host:hostport or -D [bind:]port, one a line`);
    }
    return forwards;
  }

  const startRole = () => (document.querySelector('input[name="role"]:checked') || {}).value || 'C';

  function updateStartForm() {
    const role = startRole();
    $('#listen-row').hidden = role !== 'C';
    $('#target-row').hidden = role !== 'S';
    const format = `${$('#data-bits').value}${$('#parity').value}${$('#stop-bits').value}`;
    const baud = $('#baud').value.trim() || '?';
    const flow = $('#flow').value;
    setText($('#start-format'), `${role} on ${$('#device').value.trim() || '(device)'} at ${baud} ${format}${flow === 'rtscts' ? ', RTS/CTS' : ''}`);
  }

  async function startLink(event) {
    event.preventDefault();
    const role = startRole();
    const device = $('#device').value.trim();
    const baudText = $('#baud').value.trim();
    const baud = Number(baudText);
    if (!device) { showMessage('choose a serial device or write its path'); return; }
    if (!/^\d+$/.test(baudText) || baud <= 0) { showMessage(`'${baudText}' is not a baud rate: write a whole number such as 115200`); return; }
    let forwards;
    try { forwards = parseForwards($('#start-forwards').value); } catch (err) { showMessage(err.message); return; }
    const listen = $('#listen').value.trim();
    const target = $('#target').value.trim();
    if (role === 'C' && !listen && forwards.length === 0) {
      showMessage('C needs a listen port ([ADDR:]PORT) or at least one forward');
      return;
    }
    const request = {
      role,
      device,
      baud,
      format: `${$('#data-bits').value}${$('#parity').value}${$('#stop-bits').value}`,
      flow: $('#flow').value,
      listen: role === 'C' && listen ? listen : null,
      target: role === 'S' && target ? target : null,
      forwards,
    };
    const button = $('#start-button');
    button.disabled = true;
    try {
      const link = await api('POST', '/api/links', request);
      if (link && link.id !== undefined) {
        const id = String(link.id);
        if (!state.links.has(id)) {
          const links = [...state.links.values(), link];
          setLinks(links);
        }
        select(id, false);
        renderAll();
        showMessage(`started link ${id} (${role} on ${device})`, 'info');
      }
    } catch (err) {
      showError(`starting ${role} on ${device}`, err);
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- wiring

  let chartQueued = false;
  function queueChart() {
    if (chartQueued) return;
    chartQueued = true;
    requestAnimationFrame(() => { chartQueued = false; drawChart(); });
  }

  function renderAll() {
    renderLinks();
    renderStreams();
    renderForwards();
    drawChart();
  }

  function initToken() {
    const match = /(?:^#|&)token=([^&]*)/.exec(window.location.hash);
    if (match) {
      let token = match[1];
      try { token = decodeURIComponent(token); } catch (e) { /* keep it as written */ }
      if (token) writeStorage(TOKEN_KEY, token);
      // Out of the address bar, the history and any screenshot.
      history.replaceState(null, '', window.location.pathname + window.location.search);
    }
    state.token = readStorage(TOKEN_KEY);
    $('#token-state').hidden = Boolean(state.token);
  }

  function bindUI() {
    $('#message-close').addEventListener('click', clearMessage);
    $('#link-select').addEventListener('change', (event) => select(event.target.value || null));
    $('#stream-filter').addEventListener('input', (event) => {
      state.filter = event.target.value.trim().toLowerCase();
      renderStreams();
    });
    for (const th of document.querySelectorAll('#streams th[data-sort]')) {
      th.tabIndex = 0;
      const sortBy = () => {
        const key = th.dataset.sort;
        state.sort = state.sort.key === key ? { key, dir: -state.sort.dir } : { key, dir: th.dataset.type === 'num' && key !== 'id' ? -1 : 1 };
        renderStreams();
      };
      th.addEventListener('click', sortBy);
      th.addEventListener('keydown', (event) => { if (event.key === 'Enter') sortBy(); });
    }
    $('#streams tbody').addEventListener('click', (event) => {
      const button = event.target.closest('button.stream-reset');
      if (!button) return;
      const tr = button.closest('tr');
      resetStream(tr.dataset.link, tr.dataset.stream, button);
    });
    $('#forward-form').addEventListener('submit', addForward);
    $('#start-form').addEventListener('submit', startLink);
    $('#port-refresh').addEventListener('click', loadPorts);
    $('#port-select').addEventListener('change', () => {
      const path = $('#port-select').value;
      if (path) $('#device').value = path;
      showPortDetails();
      updateStartForm();
    });
    $('#device').addEventListener('input', () => {
      const path = $('#device').value.trim();
      $('#port-select').value = state.ports.some((p) => p.path === path) ? path : '';
      showPortDetails();
      updateStartForm();
    });
    for (const selector of ['#baud', '#data-bits', '#parity', '#stop-bits', '#flow', '#role-s', '#role-c']) {
      $(selector).addEventListener('input', updateStartForm);
      $(selector).addEventListener('change', updateStartForm);
    }
    if (typeof ResizeObserver === 'function') new ResizeObserver(queueChart).observe($('#chart'));
    else window.addEventListener('resize', queueChart);
    setInterval(watchStale, 1000);
    updateStartForm();
  }

  async function main() {
    initToken();
    bindUI();
    renderAll();
    await loadOverview();
    connectLive();
    loadEvents(false);
    loadPorts();
  }

  document.addEventListener('DOMContentLoaded', main);
})();
