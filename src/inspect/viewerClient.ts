/**
 * The viewer page's own script and styles, inlined into every generated page (see viewer.ts). Plain browser
 * JavaScript, kept free of `${` so it can live in a template literal. It reads the model from #trace-data.
 */

export const VIEWER_CSS = `
:root { --fg:#1f2933; --muted:#6b7785; --bg:#f7f8fa; --panel:#fff; --line:#d9dee4; --accent:#1c7ed6; --bad:#e03131; }
* { box-sizing: border-box; }
body { margin:0; font:13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header { padding:10px 16px; background:#1f2933; color:#fff; }
header h1 { margin:0 0 4px; font-size:16px; }
#summary { color:#cfd6de; font-size:12px; }
#summary b { color:#fff; }
#summary .bad { color:#ff8787; font-weight:600; }
#summary details pre { max-height:240px; overflow:auto; white-space:pre-wrap; font-size:11px; }
main { padding:10px 16px; display:grid; grid-template-columns: minmax(0, 1fr); gap:10px; }
section { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:8px 10px; }
h2 { font-size:13px; margin:0 0 6px; }
.panel-head { display:flex; align-items:center; gap:14px; flex-wrap:wrap; }
.panel-head h2 { margin:0; }
.hint { color:var(--muted); font-size:11px; }
#chart { overflow:auto; }
svg.chart { display:block; font-size:11px; }
svg.chart .state rect { fill:#f1f3f5; stroke:#868e96; stroke-width:1; }
svg.chart .state.compound > rect { fill:#fbfcfd; stroke-dasharray:4 3; }
svg.chart .state.final rect { stroke-width:3; }
svg.chart .state .title { font-weight:600; }
svg.chart .state.active > rect { stroke:#1f2933; stroke-width:2; }
svg.chart .state.atomic.active > rect { fill:#fff3bf; }
svg.chart .state.compound.active > rect { fill:#fffbe6; }
svg.chart .state.focus.atomic > rect { fill:var(--focus, #d0ebff); }
svg.chart .state.from > rect { stroke:var(--accent); stroke-dasharray:3 2; stroke-width:2; }
svg.chart .edge path { fill:none; stroke:#adb5bd; stroke-width:1; color:#adb5bd; }
svg.chart .edge text { fill:#868e96; font-size:9px; }
svg.chart .edge.targetless path { stroke-dasharray:3 2; }
svg.chart .edge:hover path { stroke:#495057; color:#495057; stroke-width:2; }
svg.chart .edge.current path { stroke:var(--accent); color:var(--accent); stroke-width:2.5; }
svg.chart .edge.current text { fill:var(--accent); font-weight:600; font-size:10px; }
#controls { display:flex; gap:6px; align-items:center; flex-wrap:wrap; margin-bottom:6px; }
#controls button { font:inherit; padding:2px 8px; border:1px solid var(--line); background:#f8f9fa; border-radius:4px; cursor:pointer; }
#controls button:hover { background:#e9ecef; }
#controls label { color:var(--muted); }
#scrubber { width:100%; }
#step { margin-top:4px; }
#step .ev { font-family:ui-monospace, monospace; background:#f1f3f5; padding:0 4px; border-radius:3px; }
#node-states { display:grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap:2px 12px; margin-top:6px; font-size:12px; }
#node-states div { white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.chip { display:inline-block; width:10px; height:10px; border-radius:50%; margin-right:4px; vertical-align:-1px; }
.sw { display:inline-block; width:14px; height:10px; margin:0 3px 0 8px; vertical-align:-1px; border:1px solid rgba(0,0,0,.15); }
#legend { font-size:11px; color:var(--muted); }
#timeline { position:relative; }
#lanes { display:block; width:100%; cursor:crosshair; }
#lane-labels { position:absolute; left:0; top:0; width:0; }
.lane-label { position:absolute; left:0; width:104px; height:22px; line-height:22px; padding-left:6px; font-size:12px; border-left:4px solid; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; cursor:pointer; }
.lane-label.focus { font-weight:700; }
.lane-label.agent { height:14px; line-height:14px; font-size:11px; color:#495057; }
#agent-states { display:grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap:2px 12px; margin-top:4px; font-size:12px; }
#agent-states div { white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
#agent-states .note { color:var(--muted); }
#tooltip { position:absolute; pointer-events:none; background:rgba(31,41,51,.95); color:#fff; font-size:11px; padding:4px 6px; border-radius:4px; white-space:pre; z-index:2; }
#handoffs li { margin:3px 0; cursor:pointer; }
#handoffs li:hover { background:#fff4e6; }
#handoffs .when { font-family:ui-monospace, monospace; color:var(--muted); }
#handoffs .kind { font-size:11px; border-radius:3px; padding:0 4px; color:#fff; background:#e8590c; }
#handoffs .kind.release { background:#7048e8; }
#handoffs .next { color:var(--muted); }
#handoffs .note { color:#495057; font-size:12px; margin-left:12px; }
#handoffs-panel h3 { font-size:12px; margin:8px 0 4px; }
#index-changes li { margin:3px 0; cursor:pointer; }
#index-changes li:hover { background:#f3f0ff; }
#index-changes .when { font-family:ui-monospace, monospace; color:var(--muted); }
#index-changes .kind { font-size:11px; border-radius:3px; padding:0 4px; color:#fff; background:#862e9c; }
#index-changes .kind.reindex { background:#5c940d; }
#index-changes .next { color:var(--muted); }
#final-board, #final-agents { margin:6px 0 0; color:var(--muted); }
#final-agents .bad { color:var(--bad); }
#final-board .bad { color:var(--bad); }
#violations li { margin:3px 0; cursor:pointer; }
#violations li:hover { background:#fff5f5; }
#violations .checker { color:var(--bad); font-weight:600; }
#violations .expected { color:#e67700; font-size:11px; border:1px solid #ffd8a8; border-radius:3px; padding:0 3px; }
#violations .when { font-family:ui-monospace, monospace; color:var(--muted); }
#violation-count.bad { color:var(--bad); }
`;

export const VIEWER_CLIENT_JS = String.raw`
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('trace-data').textContent);
  var T = D.tr, N = T.t.length, nodes = D.nodes, NN = nodes.length;
  var PALETTE = ['#1c7ed6', '#d6336c', '#0ca678', '#f08c00', '#7048e8', '#c92a2a', '#1098ad', '#5c940d', '#ae3ec9', '#495057', '#e8590c', '#364fc7'];
  var nodeColor = function (i) { return PALETTE[i % PALETTE.length]; };
  var TOP = { follower: '#b8c4d0', candidate: '#f2b134', leader: '#2f9e44', fenced: '#e8590c', shutdown: '#495057' };
  var SUB = { 'leader.renewing': '#40c057', 'leader.verifying': '#237032', 'follower.releasing': '#91a7ff', 'follower.released': '#91a7ff' };
  var PRIO = { leader: 4, fenced: 3, candidate: 2, shutdown: 1, follower: 0 };
  var FAULT = {
    partition: { c: '#4263eb', label: 'partition' }, pause: { c: '#fab005', label: 'pause' }, crash: { c: '#212529', label: 'crash' },
    loss: { c: '#9775fa', label: 'message loss' }, 'clock-jump': { c: '#be4bdb', label: 'clock jump' }, drift: { c: '#be4bdb', label: 'drift change' },
    'store-wipe': { c: '#c92a2a', label: 'store wipe' }, 'resource-delay': { c: '#0c8599', label: 'resource link delayed' }
  };
  // A resource-delay fault: the node's writes to the protected resource sit in a queue; aimed at the leader it comes
  // with a store cut (a partition whose detail says with: resource-delay), drawn and named as such.
  var RDELAY_C = FAULT['resource-delay'].c, CUT_LABEL = 'store cut (with resource delay)';
  var faultName = function (f) {
    if (f.w === 'resource-delay') return CUT_LABEL;
    if (f.k === 'resource-delay') return 'resource link delayed';
    return f.k;
  };
  var RDL = (D.res && D.res.dl) || { i: [], ms: [] };
  var delayOf = {};
  for (var di = 0; di < RDL.i.length; di++) delayOf[RDL.i[di]] = RDL.ms[di];
  var topOf = D.states.map(function (s) { return s.split('.')[0]; });
  var stateColor = D.states.map(function (s, i) { return SUB[s] || TOP[topOf[i]] || '#dee2e6'; });
  var statePrio = topOf.map(function (s) { return PRIO[s] === undefined ? 0 : PRIO[s]; });
  var shortEvent = function (ev) {
    if (ev === '') return 'always';
    if (ev.indexOf('xstate.after.') === 0) return 'after ' + ev.split('.')[2];
    return ev;
  };
  var fmtT = function (t) {
    var r = t - D.start, span = D.end - D.start;
    if (span >= 10000) return (r / 1000).toFixed(3) + ' s';
    return r.toFixed(1) + ' ms';
  };
  var esc = function (s) { return String(s).replace(/[&<>"]/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]; }); };

  // Per-node transition indices (global order) and leadership terms.
  var counts = new Int32Array(NN);
  for (var i = 0; i < N; i++) counts[T.n[i]]++;
  var perNode = [];
  for (var n = 0; n < NN; n++) perNode.push(new Int32Array(counts[n]));
  var fill = new Int32Array(NN);
  for (i = 0; i < N; i++) { var nn = T.n[i]; perNode[nn][fill[nn]++] = i; }
  var terms = [];
  for (n = 0; n < NN; n++) {
    var list = [], idx = perNode[n], open = null;
    for (var k = 0; k < idx.length; k++) {
      var g = idx[k], isLeader = topOf[T.s[g]] === 'leader';
      if (isLeader && (!open || open.epoch !== T.ep[g])) { if (open) { open.b = T.t[g]; list.push(open); } open = { a: T.t[g], b: D.end, epoch: T.ep[g] }; }
      else if (!isLeader && open) { open.b = T.t[g]; list.push(open); open = null; }
    }
    if (open) list.push(open);
    terms.push(list);
  }
  var maxEpoch = 0;
  for (i = 0; i < N; i++) if (T.ep[i] > maxEpoch) maxEpoch = T.ep[i];

  // Leader work, agents.
  var WK = D.work || { t: [], n: [], ph: [], tok: [], w: [] };
  var AG = D.agents || { names: [], spans: [], beats: { t: [], g: [] }, ev: { t: [], g: [], k: [], task: [], tok: [], note: [] }, tasks: [], notes: [], sweeps: { t: [], n: [], ok: [], ep: [] }, stalls: [], retirements: [] };
  var RET = AG.retirements || [];
  var agents = AG.names, NA = agents.length, AE = AG.ev;
  var AG_STATE = ['active', 'stale', 'gone'];
  var AG_STATE_C = { active: '#c3fae8', stale: '#ffa94d', gone: '#adb5bd' };
  var AG_EV = ['claim', 'complete', 'requeue', 'release', 'register', 'stale', 'deregister', 'retire', 'reindex'];
  var AG_EV_C = { claim: '#1c7ed6', complete: '#2f9e44', requeue: '#e8590c', release: '#7048e8', register: '#212529', stale: '#d9480f', deregister: '#495057', retire: '#862e9c', reindex: '#5c940d' };
  // An agent out of the agent index (retired, until an index line adds it back): its lane is greyed over that span.
  var RETIRED_C = '#dee2e6';
  var agRet = [];
  for (var g1 = 0; g1 < NA; g1++) agRet.push([]);
  RET.forEach(function (r) { agRet[r.g].push(r); });
  var retiredAt = function (g, t) {
    var list = agRet[g] || [];
    for (var j = list.length - 1; j >= 0; j--) if (list[j].t <= t) return list[j].until > t || (list[j].back === null && t >= list[j].until) ? list[j] : null;
    return null;
  };
  var retiredBy = function (r) { return r.by + (r.sweep ? "'s sweep" : '') + (r.epoch >= 0 ? ' at epoch ' + r.epoch : ''); };
  var agSpans = [];
  for (var g0 = 0; g0 < NA; g0++) agSpans.push([]);
  AG.spans.forEach(function (sp) { agSpans[sp.g].push(sp); });
  var agentSpanAt = function (g, t) {
    var list = agSpans[g], j = lastLE(list.length, function (k) { return list[k].a; }, t);
    return j >= 0 && list[j].b > t ? list[j] : (j >= 0 && list[j].b >= D.end && t >= D.end ? list[j] : null);
  };
  var lastAgentEvent = function (g, t) {
    for (var j = lastLE(AE.t.length, function (k) { return AE.t[k]; }, t); j >= 0; j--) if (AE.g[j] === g) return j;
    return -1;
  };
  var agentEventText = function (j) {
    var k = AG_EV[AE.k[j]], task = AE.task[j] >= 0 ? AG.tasks[AE.task[j]] : '';
    var txt = k + (task ? ' ' + task : '') + (AE.tok[j] >= 0 ? ' (token ' + AE.tok[j] + ')' : '');
    return AE.note[j] >= 0 ? txt + ' — ' + AG.notes[AE.note[j]] : txt;
  };

  // Last element of sorted array arr (values mapped by key) that is <= x; -1 if none.
  var lastLE = function (len, at, x) {
    var lo = 0, hi = len - 1, ans = -1;
    while (lo <= hi) { var mid = (lo + hi) >> 1; if (at(mid) <= x) { ans = mid; lo = mid + 1; } else hi = mid - 1; }
    return ans;
  };
  var nodeStep = function (n, cur) { var idx = perNode[n]; return lastLE(idx.length, function (k) { return idx[k]; }, cur); };
  var stateIdxAt = function (n, cur) {
    var idx = perNode[n]; if (idx.length === 0) return -1;
    var k = nodeStep(n, cur);
    return k >= 0 ? T.s[idx[k]] : T.f[idx[0]];
  };
  var epochAt = function (n, cur) {
    var idx = perNode[n], k = nodeStep(n, cur);
    for (; k >= 0; k--) if (T.ep[idx[k]] >= 0) return T.ep[idx[k]];
    return -1;
  };

  var cur = 0, focus = -1;
  var $ = function (id) { return document.getElementById(id); };
  var scrub = $('scrubber');
  scrub.max = String(Math.max(0, N - 1));

  // Summary and legend.
  var accepted = 0, rejected = 0;
  for (i = 0; i < D.res.t.length; i++) { if (D.res.ok[i]) accepted++; else rejected++; }
  var claims = 0, agCount = { claim: 0, complete: 0, requeue: 0 };
  for (i = 0; i < WK.t.length; i++) if (WK.ph[i] === 0) claims++;
  for (i = 0; i < AE.t.length; i++) { var kk = AG_EV[AE.k[i]]; if (kk in agCount) agCount[kk]++; }
  var unexpected = D.violations.filter(function (v) { return !v.expected; }).length;
  var optKeys = Object.keys(D.meta.options || {});
  var isScalar = function (v) { return v === null || typeof v !== 'object'; };
  var opts = optKeys.filter(function (key) { return isScalar(D.meta.options[key]); }).map(function (key) { return key + '=' + JSON.stringify(D.meta.options[key]); }).join(' ');
  var nested = optKeys.filter(function (key) { return !isScalar(D.meta.options[key]); });
  $('summary').innerHTML =
    '<b>' + NN + '</b> nodes · <b>' + fmtDuration(D.end - D.start) + '</b> · <b>' + N.toLocaleString() + '</b> transitions · epochs up to <b>' + maxEpoch + '</b>' +
    ' · fenced writes <b>' + accepted.toLocaleString() + '</b> accepted / <b' + (rejected ? ' class="bad"' : '') + '>' + rejected.toLocaleString() + '</b> rejected' +
    (RDL.i.length ? ' (<b>' + RDL.i.length.toLocaleString() + '</b> delayed in the resource link)' : '') +
    (WK.t.length ? ' · <b>' + claims.toLocaleString() + '</b> token claims' : '') +
    (NA ? ' · <b>' + NA + '</b> agents, tasks claimed <b>' + agCount.claim + '</b> / completed <b>' + agCount.complete + '</b> / requeued <b' + (agCount.requeue ? ' class="bad"' : '') + '>' + agCount.requeue + '</b>' + (RET.length ? ' · <b>' + RET.length + '</b> retired from the index' : '') : '') +
    ' · <b>' + D.faults.length + '</b> faults · <span' + (D.violations.length ? ' class="bad"' : '') + '>' + D.violations.length + ' violations</span>' +
    (D.meta.seed !== undefined ? ' · seed <b>' + esc(D.meta.seed) + '</b>' : '') +
    ' · ' + D.meta.lines.toLocaleString() + ' lines (' + D.meta.source + ')' +
    (opts ? '<br>' + esc(opts) : '') +
    (nested.length ? '<details><summary>' + esc(nested.join(', ')) + '</summary><pre>' + esc(JSON.stringify(nested.reduce(function (o, k) { o[k] = D.meta.options[k]; return o; }, {}), null, 1)) + '</pre></details>' : '') +
    (D.meta.violatedAssumptions.length ? '<br>assumptions broken on purpose: <b>' + esc(D.meta.violatedAssumptions.join(', ')) + '</b>' : '');
  function fmtDuration(ms) { return ms >= 10000 ? (ms / 1000).toFixed(1) + ' s' : ms.toFixed(0) + ' ms'; }
  var legend = '';
  Object.keys(TOP).forEach(function (s) { legend += '<span class="sw" style="background:' + TOP[s] + '"></span>' + s; });
  Object.keys(FAULT).forEach(function (f) { legend += '<span class="sw" style="background:' + FAULT[f].c + ';opacity:.5"></span>' + FAULT[f].label; });
  if (D.faults.some(function (f) { return f.w === 'resource-delay'; })) legend += '<span class="sw" style="background:' + FAULT.partition.c + ';opacity:.5;border-top:3px dashed ' + RDELAY_C + '"></span>' + CUT_LABEL;
  legend += '<span class="sw" style="background:#2f9e44"></span>accepted write<span class="sw" style="background:#e03131"></span>rejected write / violation';
  if (RDL.i.length) legend += '<span class="sw" style="background:#e03131;border:2px solid ' + RDELAY_C + ';width:10px"></span>delayed write (line: sent → arrived)';
  if (WK.t.length) legend += '<span class="sw" style="background:#1f2933;width:3px"></span>token claim (assertLeader)<span class="sw" style="background:#e03131;width:3px"></span>claim whose write was rejected';
  if (AG.sweeps.t.length) legend += '<span class="sw" style="background:#7048e8;width:6px"></span>sweep<span class="sw" style="background:#e03131;width:6px"></span>refused sweep';
  if (NA) {
    legend += '<br>agents:';
    AG_STATE.forEach(function (st) { legend += '<span class="sw" style="background:' + AG_STATE_C[st] + '"></span>' + st; });
    ['claim', 'complete', 'requeue', 'release', 'stale'].forEach(function (k) { legend += '<span class="sw" style="background:' + AG_EV_C[k] + ';width:' + (k === 'claim' || k === 'complete' ? 3 : 8) + 'px"></span>' + (k === 'stale' ? 'stale mark' : k); });
    legend += '<span class="sw" style="background:#087f5b;width:3px;height:4px"></span>heartbeat';
    if (RET.length) legend += '<span class="sw" style="background:' + AG_EV_C.retire + ';width:4px"></span>retired from the index<span class="sw" style="background:' + RETIRED_C + '"></span>not indexed';
  }
  $('legend').innerHTML = legend;

  // Focus selector and per-node state list.
  var sel = $('focus');
  nodes.forEach(function (name, n) { var o = document.createElement('option'); o.value = String(n); o.textContent = name; sel.appendChild(o); });
  sel.addEventListener('change', function () { setFocus(sel.value === '' ? -1 : Number(sel.value)); });
  var stepEl = $('step');
  var statesEl = document.createElement('div'); statesEl.id = 'node-states'; stepEl.after(statesEl);
  var nodeRows = nodes.map(function (name, n) {
    var d = document.createElement('div'); d.setAttribute('data-node', name); statesEl.appendChild(d); return d;
  });
  var agentStatesEl = document.createElement('div'); agentStatesEl.id = 'agent-states'; statesEl.after(agentStatesEl);
  var agentRows = agents.map(function (name) {
    var d = document.createElement('div'); d.setAttribute('data-agent', name); agentStatesEl.appendChild(d); return d;
  });

  // Statechart boxes and edges.
  var boxes = {};
  document.querySelectorAll('#chart [data-state]').forEach(function (g) { boxes[g.getAttribute('data-state')] = g; });
  var edgeEls = {};
  document.querySelectorAll('#chart [data-edge]').forEach(function (g) {
    g.getAttribute('data-edge').split('|').forEach(function (key) { edgeEls[key] = g; });
  });
  var SVGNS = document.querySelector('#chart svg').namespaceURI;
  var ancestors = function (path) {
    var parts = path.split('.'), out = [];
    for (var j = 1; j <= parts.length; j++) out.push(parts.slice(0, j).join('.'));
    return out;
  };
  var matchEdges = function (from, to, ev) {
    var se = shortEvent(ev), out = [];
    D.chart.edges.forEach(function (e) {
      var srcOk = from === e.source || from.indexOf(e.source + '.') === 0;
      var dstOk = to === e.target || to.indexOf(e.target + '.') === 0;
      if (srcOk && dstOk && e.event === se) out.push(e.source + '>' + e.target + '>' + e.event);
    });
    return out;
  };

  function highlightChart() {
    var present = {};
    for (var n = 0; n < NN; n++) {
      var s = stateIdxAt(n, cur);
      if (s < 0) continue;
      ancestors(D.states[s]).forEach(function (p) { (present[p] = present[p] || []).push(n); });
    }
    Object.keys(boxes).forEach(function (p) {
      var g = boxes[p], here = present[p] || [];
      var shown = focus >= 0 ? here.filter(function (x) { return x === focus; }) : here;
      g.classList.toggle('active', shown.length > 0);
      g.classList.toggle('focus', focus >= 0 && shown.length > 0);
      g.setAttribute('data-nodes', here.map(function (x) { return nodes[x]; }).join(' '));
      if (focus >= 0) g.style.setProperty('--focus', nodeColor(focus) + '55');
      var chips = g.querySelector('.chips');
      while (chips.firstChild) chips.removeChild(chips.firstChild);
      if (g.classList.contains('compound')) return;
      var x0 = Number(chips.getAttribute('data-x')), y0 = Number(chips.getAttribute('data-y'));
      here.forEach(function (x, j) {
        var c = document.createElementNS(SVGNS, 'circle');
        c.setAttribute('cx', String(x0 - 5 - j * 10)); c.setAttribute('cy', String(y0 - 4)); c.setAttribute('r', x === focus ? '5' : '4');
        c.setAttribute('fill', nodeColor(x)); c.setAttribute('stroke', x === focus ? '#000' : '#fff');
        var tt = document.createElementNS(SVGNS, 'title'); tt.textContent = nodes[x]; c.appendChild(tt);
        chips.appendChild(c);
      });
    });
    Object.keys(edgeEls).forEach(function (k) { edgeEls[k].classList.remove('current'); });
    Object.keys(boxes).forEach(function (p) { boxes[p].classList.remove('from'); });
    if (N > 0) {
      var from = D.states[T.f[cur]], to = D.states[T.s[cur]];
      matchEdges(from, to, D.events[T.e[cur]]).forEach(function (k) { if (edgeEls[k]) edgeEls[k].classList.add('current'); });
      if (boxes[from]) boxes[from].classList.add('from');
    }
  }

  function renderStep() {
    if (N === 0) { stepEl.textContent = 'No transitions in this trace.'; return; }
    var n = T.n[cur], ep = T.ep[cur];
    stepEl.innerHTML = '<b>#' + (cur + 1).toLocaleString() + '</b> / ' + N.toLocaleString() + ' · t = <b>' + fmtT(T.t[cur]) + '</b> · ' +
      '<span class="chip" style="background:' + nodeColor(n) + '"></span><b>' + esc(nodes[n]) + '</b>: ' +
      esc(D.states[T.f[cur]]) + ' → <b>' + esc(D.states[T.s[cur]]) + '</b> on <span class="ev" id="step-event">' + esc(D.events[T.e[cur]] || '(eventless)') + '</span>' +
      (ep >= 0 ? ' · epoch <b>' + ep + '</b>' : '');
    for (var m = 0; m < NN; m++) {
      var s = stateIdxAt(m, cur), e = epochAt(m, cur);
      nodeRows[m].innerHTML = '<span class="chip" style="background:' + nodeColor(m) + '"></span>' + esc(nodes[m]) + ': <b>' + (s >= 0 ? esc(D.states[s]) : '—') + '</b>' + (e >= 0 ? ' · epoch ' + e : '');
    }
    var tc = T.t[cur];
    for (var g = 0; g < NA; g++) {
      var sp = agentSpanAt(g, tc), j = lastAgentEvent(g, tc);
      agentRows[g].title = j >= 0 ? agentEventText(j) : '';
      var rt = retiredAt(g, tc);
      agentRows[g].innerHTML = '<span class="chip" style="background:' + (sp ? AG_STATE_C[AG_STATE[sp.s]] : '#f1f3f5') + ';border:1px solid #868e96"></span>agent ' + esc(agents[g]) + ': <b>' + (sp ? AG_STATE[sp.s] + ' (incarnation ' + sp.inc + ')' : '—') + '</b>' +
        (rt ? ' · <b class="retired">not indexed</b> (retired by ' + esc(retiredBy(rt)) + ' at ' + fmtT(rt.t) + ')' : '') +
        (j >= 0 ? ' <span class="note">· ' + fmtT(AE.t[j]) + ' ' + esc(agentEventText(j)) + '</span>' : '');
    }
  }

  function setCur(i, keepView) {
    if (N === 0) return;
    cur = Math.max(0, Math.min(N - 1, i | 0));
    scrub.value = String(cur);
    renderStep();
    highlightChart();
    if (!keepView) {
      var t = T.t[cur], span = v1 - v0;
      if (t < v0 || t > v1) { v0 = t - span / 2; v1 = t + span / 2; clampView(); drawBase(); }
    }
    drawOverlay();
  }
  function setFocus(n) {
    focus = n;
    sel.value = n < 0 ? '' : String(n);
    labelEls.forEach(function (el, j) { el.classList.toggle('focus', j === focus); });
    highlightChart();
  }
  var stepBy = function (dir) {
    var coarse = $('coarse').checked, only = $('only-focus').checked && focus >= 0;
    for (var j = cur + dir; j >= 0 && j < N; j += dir) {
      if (only && T.n[j] !== focus) continue;
      if (coarse && topOf[T.f[j]] === topOf[T.s[j]]) continue;
      setCur(j); return true;
    }
    return false;
  };
  var seekTime = function (t) { var j = lastLE(N, function (k) { return T.t[k]; }, t); setCur(j < 0 ? 0 : j, true); };
  var violationStep = function (dir) {
    var t = N ? T.t[cur] : 0, vs = D.violations;
    if (dir > 0) { for (var j = 0; j < vs.length; j++) if (vs[j].t > t) return focusViolation(j); }
    else { for (var q = vs.length - 1; q >= 0; q--) if (vs[q].t < t) return focusViolation(q); }
  };
  function focusViolation(j) { focusTime(D.violations[j].t); }
  function focusTime(t) {
    var span = Math.min(v1 - v0, Math.max(2000, (D.end - D.start) / 20));
    v0 = t - span / 2; v1 = t + span / 2; clampView(); drawBase();
    seekTime(t);
  }

  $('first').onclick = function () { setCur(0); };
  $('last').onclick = function () { setCur(N - 1); };
  $('prev').onclick = function () { stepBy(-1); };
  $('next').onclick = function () { stepBy(1); };
  $('prev-v').onclick = function () { violationStep(-1); };
  $('next-v').onclick = function () { violationStep(1); };
  scrub.addEventListener('input', function () { setCur(Number(scrub.value)); });
  document.addEventListener('keydown', function (e) {
    if (e.target && e.target.tagName === 'SELECT') return;
    if (e.key === 'ArrowRight') { stepBy(1); e.preventDefault(); }
    else if (e.key === 'ArrowLeft') { stepBy(-1); e.preventDefault(); }
    else if (e.key === 'Home') setCur(0);
    else if (e.key === 'End') setCur(N - 1);
    else if (e.key === 'v') violationStep(1);
    else if (e.key === 'V') violationStep(-1);
  });

  // Violations list.
  var vl = $('violations');
  $('violation-count').textContent = '(' + D.violations.length + (D.violations.length ? ', ' + unexpected + ' unexpected' : '') + ')';
  if (D.violations.length) $('violation-count').classList.add('bad');
  D.violations.forEach(function (v, j) {
    var li = document.createElement('li');
    li.setAttribute('data-violation', v.checker);
    li.innerHTML = '<span class="when">' + fmtT(v.t) + '</span> <span class="checker">' + esc(v.checker) + '</span> ' +
      (v.expected ? '<span class="expected" title="only promised under assumptions this run broke on purpose">expected: assumptions broken</span> ' : '') +
      esc(v.message) + (v.nodes.length ? ' <i>(' + esc(v.nodes.join(', ')) + ')</i>' : '');
    li.onclick = function () { focusViolation(j); };
    vl.appendChild(li);
  });
  if (!D.violations.length) vl.outerHTML = '<p id="violations">No checker violations in this trace.</p>';

  // Agent handoffs: every task a sweep requeued or an agent released, with its note and what became of it next.
  var handoffs = [], MAX_HANDOFFS = 500;
  var K_REQUEUE = AG_EV.indexOf('requeue'), K_RELEASE = AG_EV.indexOf('release'), K_CLAIM = AG_EV.indexOf('claim'), K_COMPLETE = AG_EV.indexOf('complete');
  for (i = 0; i < AE.t.length; i++) if (AE.k[i] === K_REQUEUE || AE.k[i] === K_RELEASE) handoffs.push(i);
  if (handoffs.length || AG.final || NA || RET.length) {
    var byTask = {};
    if (handoffs.length) for (i = 0; i < AE.t.length; i++) if (AE.task[i] >= 0) (byTask[AE.task[i]] = byTask[AE.task[i]] || []).push(i);
    var afterwards = function (j) {
      var list = byTask[AE.task[j]] || [], claim = -1, done = -1;
      for (var q = 0; q < list.length; q++) {
        var e = list[q];
        if (e <= j) continue;
        if (claim < 0 && AE.k[e] === K_CLAIM) claim = e;
        else if (claim >= 0 && AE.k[e] === K_COMPLETE) { done = e; break; }
        else if (claim >= 0 && (AE.k[e] === K_REQUEUE || AE.k[e] === K_RELEASE)) break;
      }
      if (claim < 0) return 'not claimed again in this trace';
      return 'claimed again by ' + agents[AE.g[claim]] + ' (token ' + AE.tok[claim] + ') at ' + fmtT(AE.t[claim]) +
        (done >= 0 ? ', completed at ' + fmtT(AE.t[done]) : ', not completed in this trace');
    };
    var hl = $('handoffs');
    $('handoffs-panel').hidden = false;
    $('handoff-count').textContent = '(' + handoffs.length + ')';
    handoffs.slice(0, MAX_HANDOFFS).forEach(function (j) {
      var li = document.createElement('li'), kind = AG_EV[AE.k[j]], task = AE.task[j] >= 0 ? AG.tasks[AE.task[j]] : '';
      li.setAttribute('data-kind', kind); li.setAttribute('data-task', task); li.setAttribute('data-agent', agents[AE.g[j]]);
      li.innerHTML = '<span class="when">' + fmtT(AE.t[j]) + '</span> <span class="kind ' + kind + '">' + kind + '</span> <b>' + esc(task) + '</b> from agent <b>' + esc(agents[AE.g[j]]) + '</b>' +
        (AE.tok[j] >= 0 ? ' (claim token ' + AE.tok[j] + ')' : '') + ' <span class="next">→ ' + esc(afterwards(j)) + '</span>' +
        (AE.note[j] >= 0 ? '<div class="note">' + esc(AG.notes[AE.note[j]]) + '</div>' : '');
      li.title = 'click to jump to ' + fmtT(AE.t[j]);
      li.onclick = function () { focusTime(AE.t[j]); };
      hl.appendChild(li);
    });
    if (handoffs.length > MAX_HANDOFFS) { var more = document.createElement('li'); more.className = 'more'; more.textContent = '… ' + (handoffs.length - MAX_HANDOFFS) + ' more (hover the agent lanes)'; hl.appendChild(more); }
    if (!handoffs.length) hl.outerHTML = '<p id="handoffs">No task was requeued or released in this trace.</p>';
    // Agent index changes: every retirement (who retired the agent at which epoch, its record's state, tasks it still
    // held) and whether and when it came back into the index.
    if (RET.length) {
      var il = $('index-changes');
      $('index-changes-head').hidden = false; il.hidden = false;
      $('index-change-count').textContent = '(' + RET.length + ' retired)';
      RET.slice(0, MAX_HANDOFFS).forEach(function (r) {
        var li = document.createElement('li'), name = agents[r.g];
        li.setAttribute('data-kind', 'retire'); li.setAttribute('data-agent', name); li.setAttribute('data-by', r.by);
        var held = (r.claims.length ? ' · still claimed: ' + esc(r.claims.join(', ')) : '') + (r.reserved.length ? ' · still reserved: ' + esc(r.reserved.join(', ')) : '');
        li.innerHTML = '<span class="when">' + fmtT(r.t) + '</span> <span class="kind retire">retired</span> agent <b>' + esc(name) + '</b> by <b>' + esc(retiredBy(r)) + '</b>' +
          ' · record <b>' + esc(r.state === null ? 'missing' : r.state) + '</b>' + (r.inc >= 0 ? ' (incarnation ' + r.inc + ')' : '') + held +
          ' <span class="next">→ ' + (r.back ? (r.back.sweep ? 'put back by ' + esc(r.back.by) : 'registered again') + ' at ' + fmtT(r.back.t) + (r.back.inc >= 0 ? ' (incarnation ' + r.back.inc + ')' : '') : 'not indexed again in this trace') + '</span>';
        li.title = 'click to jump to ' + fmtT(r.t);
        li.onclick = function () { focusTime(r.t); };
        il.appendChild(li);
      });
    }
    var fin = AG.final;
    if (fin && fin.unindexed) {
      var fa = $('final-agents');
      fa.hidden = false;
      fa.innerHTML = 'Agents at the end: <b>' + fin.agents + '</b> records, ' + (fin.unindexed.length
        ? '<b class="bad">' + fin.unindexed.length + '</b> no longer indexed: ' + fin.unindexed.map(function (u) { return '<span data-unindexed="' + esc(u.agent) + '"><b>' + esc(u.agent) + '</b> (' + esc(u.state) + (u.incarnation !== null ? ', incarnation ' + u.incarnation : '') + ')</span>'; }).join(', ')
        : 'all indexed') + '.';
    }
    if (fin) {
      var states = Object.keys(fin.counts).sort();
      var unfinished = states.reduce(function (n, st) { return st === 'completed' ? n : n + fin.counts[st]; }, 0);
      $('final-board').innerHTML = 'Task board at the end (' + fmtT(fin.t) + '): ' + states.map(function (st) { return '<b' + (st !== 'completed' && fin.counts[st] ? ' class="bad"' : '') + '>' + fin.counts[st] + '</b> ' + esc(st); }).join(' · ') +
        (fin.open.length ? '. Unfinished: ' + fin.open.map(function (o) { return esc(o.task) + ' ' + esc(o.state) + (o.by ? ' by ' + esc(o.by) : ''); }).join(', ') + (unfinished > fin.open.length ? ', …' : '') : '.');
    }
  }

  // Timeline canvas.
  var LABEL_W = 110, AXIS_H = 24, LANE_H = 22, GAP = 6, RES_H = 30;
  var canvas = $('lanes'), ctx = canvas.getContext('2d');
  var base = document.createElement('canvas'), bctx = base.getContext('2d');
  var laneTop = function (n) { return AXIS_H + n * (LANE_H + GAP); };
  var resTop = laneTop(NN);
  var AG_H = 14, AG_GAP = 4;
  var agentTop = function (g) { return resTop + RES_H + 12 + g * (AG_H + AG_GAP); };
  var H = NA ? agentTop(NA) + 6 : resTop + RES_H + 10;
  var W = 0, dpr = 1, v0 = D.start, v1 = D.end, markers = [];
  var labels = $('lane-labels'), labelEls = [];
  nodes.forEach(function (name, n) {
    var el = document.createElement('div');
    el.className = 'lane-label'; el.setAttribute('data-node', name); el.textContent = name; el.title = name + ' (click to highlight)';
    el.style.top = laneTop(n) + 'px'; el.style.borderColor = nodeColor(n);
    el.onclick = function () { setFocus(focus === n ? -1 : n); };
    labels.appendChild(el); labelEls.push(el);
  });
  var resLabel = document.createElement('div');
  resLabel.className = 'lane-label'; resLabel.setAttribute('data-lane', 'resource'); resLabel.textContent = 'resource';
  resLabel.style.top = (resTop + 4) + 'px'; resLabel.style.borderColor = '#868e96';
  labels.appendChild(resLabel);
  agents.forEach(function (name, g) {
    var el = document.createElement('div');
    el.className = 'lane-label agent'; el.setAttribute('data-agent', name); el.textContent = 'agent ' + name; el.title = 'worker agent ' + name;
    el.style.top = agentTop(g) + 'px'; el.style.borderColor = '#087f5b';
    labels.appendChild(el);
  });

  var xOf = function (t) { return LABEL_W + (t - v0) / (v1 - v0) * (W - LABEL_W - 8); };
  var tOf = function (x) { return v0 + (x - LABEL_W) / (W - LABEL_W - 8) * (v1 - v0); };
  function clampView() {
    var span = Math.max(1, Math.min(v1 - v0, (D.end - D.start) * 1.05));
    if (v0 < D.start - span * 0.02) v0 = D.start - span * 0.02;
    v1 = v0 + span;
    if (v1 > D.end + span * 0.02) { v1 = D.end + span * 0.02; v0 = v1 - span; }
  }
  var hatch = {};
  Object.keys(FAULT).forEach(function (f) {
    var p = document.createElement('canvas'); p.width = 8; p.height = 8;
    var c = p.getContext('2d'); c.strokeStyle = FAULT[f].c; c.lineWidth = 2; c.globalAlpha = 0.75;
    c.beginPath();
    if (f === 'resource-delay') { c.moveTo(0, 4); c.lineTo(8, 4); } else { c.moveTo(0, 8); c.lineTo(8, 0); }
    c.stroke();
    hatch[f] = ctx.createPattern(p, 'repeat');
  });

  function resize() {
    dpr = window.devicePixelRatio || 1;
    W = Math.max(300, canvas.parentElement.clientWidth);
    canvas.width = base.width = Math.round(W * dpr);
    canvas.height = base.height = Math.round(H * dpr);
    canvas.style.height = H + 'px';
    drawBase(); drawOverlay();
  }

  function niceStep(span, target) {
    var raw = span / target, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }

  // A fault on lane rows y..y+h: a hatched span with a solid top edge, or a pin for an instantaneous one.
  function drawFault(c, f, y, h) {
    var info = FAULT[f.k] || { c: '#868e96' };
    var a = Math.max(LABEL_W, xOf(f.a)), b = Math.min(W - 8, xOf(f.b));
    if (f.b > f.a && b - a >= 1) {
      c.globalAlpha = 0.55; c.fillStyle = hatch[f.k] || info.c; c.fillRect(a, y, b - a, h);
      c.globalAlpha = 1; c.fillStyle = info.c;
      // A resource delay's solid edge sits just under the top one, so the store cut that comes with it stays visible.
      if (f.k === 'resource-delay') c.fillRect(a, y + 3, b - a, 3);
      else c.fillRect(a, y, b - a, 3);
      if (f.w === 'resource-delay') { c.fillStyle = RDELAY_C; for (var cx = a + 8; cx < b; cx += 12) c.fillRect(cx, y, Math.min(4, b - cx), 3); }
    } else {
      c.fillStyle = info.c; c.fillRect(a - 1, y - 2, 2.5, h + 4);
      c.beginPath(); c.moveTo(a - 4, y - 3); c.lineTo(a + 4, y - 3); c.lineTo(a, y + 3); c.fill();
    }
    c.globalAlpha = 1;
  }

  function drawBase() {
    var c = bctx;
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.clearRect(0, 0, W, H);
    c.fillStyle = '#fff'; c.fillRect(0, 0, W, H);
    var right = W - 8;
    // Axis.
    var step = niceStep(v1 - v0, Math.max(2, (W - LABEL_W) / 110));
    c.fillStyle = '#6b7785'; c.font = '10px system-ui, sans-serif'; c.strokeStyle = '#eef0f3'; c.lineWidth = 1;
    for (var tt = Math.ceil((v0 - D.start) / step) * step + D.start; tt <= v1; tt += step) {
      var x = Math.round(xOf(tt)) + 0.5;
      if (x < LABEL_W) continue;
      c.beginPath(); c.moveTo(x, AXIS_H - 4); c.lineTo(x, H - 6); c.stroke();
      c.fillText(fmtT(tt), x + 2, 12);
    }
    // State bands, aggregated per pixel column when segments are narrower than a pixel.
    for (var n = 0; n < NN; n++) {
      var y = laneTop(n), idx = perNode[n];
      c.fillStyle = '#f1f3f5'; c.fillRect(LABEL_W, y, right - LABEL_W, LANE_H);
      if (idx.length === 0) continue;
      var k = lastLE(idx.length, function (q) { return T.t[idx[q]]; }, v0);
      var pcol = -1, pprio = -1, pcolor = '';
      var flush = function () { if (pcol >= 0) { c.fillStyle = pcolor; c.fillRect(pcol, y, 1, LANE_H); } pcol = -1; pprio = -1; };
      for (var q = Math.max(-1, k); q < idx.length; q++) {
        var ta = q < 0 ? D.start : T.t[idx[q]];
        if (ta > v1) break;
        var tb = q + 1 < idx.length ? T.t[idx[q + 1]] : D.end;
        var si = q < 0 ? T.f[idx[0]] : T.s[idx[q]];
        var x0 = Math.max(LABEL_W, xOf(ta)), x1 = Math.min(right, xOf(tb));
        if (x1 <= x0 && tb < v0) continue;
        var px0 = Math.floor(x0), px1 = Math.floor(x1);
        if (px1 > px0 + 1) {
          flush();
          c.fillStyle = stateColor[si]; c.fillRect(x0, y, x1 - x0, LANE_H);
        } else {
          if (px0 !== pcol) { flush(); pcol = px0; }
          if (statePrio[si] > pprio) { pprio = statePrio[si]; pcolor = stateColor[si]; }
        }
      }
      flush();
      // Epoch numbers on leadership terms.
      c.fillStyle = '#fff'; c.font = 'bold 11px system-ui, sans-serif';
      terms[n].forEach(function (term) {
        if (term.b < v0 || term.a > v1) return;
        var a = Math.max(LABEL_W, xOf(term.a)), b = Math.min(right, xOf(term.b));
        if (b - a > 26 && term.epoch >= 0) c.fillText('e' + term.epoch, a + 3, y + 15);
      });
    }
    // Faults (resource delays last, over the store cut that comes with them).
    var drawLaneFault = function (f) {
      if (f.b < v0 || f.a > v1) return;
      var info = FAULT[f.k] || { c: '#868e96' };
      var lanes = f.n === -2 ? [] : f.n >= 0 ? [f.n] : nodes.map(function (_, j) { return j; });
      var a = Math.max(LABEL_W, xOf(f.a)), b = Math.min(right, xOf(f.b));
      lanes.forEach(function (ln) { drawFault(c, f, laneTop(ln), LANE_H); });
      if (f.n === -1 && f.k !== 'partition') { c.globalAlpha = 0.4; c.fillStyle = info.c; c.fillRect(a, resTop, Math.max(2, b - a), 4); c.globalAlpha = 1; }
    };
    D.faults.forEach(function (f) { if (f.k !== 'resource-delay') drawLaneFault(f); });
    D.faults.forEach(function (f) { if (f.k === 'resource-delay') drawLaneFault(f); });
    c.globalAlpha = 1;
    // Orchestrator sweep stalls (thin dashed band under the lane's top edge) and sweeps (small triangles on top).
    AG.stalls.forEach(function (st) {
      if (st.b < v0 || st.a > v1) return;
      var a = Math.max(LABEL_W, xOf(st.a)), b = Math.min(right, xOf(st.b)), y = laneTop(st.n);
      c.fillStyle = '#7048e8'; c.globalAlpha = 0.6;
      for (var sx = a; sx < b; sx += 6) c.fillRect(sx, y + 4, Math.min(3, b - sx), 2);
      c.globalAlpha = 1;
    });
    var SW = AG.sweeps, swLast = -2;
    for (var si = Math.max(0, lastLE(SW.t.length, function (q) { return SW.t[q]; }, v0)); si < SW.t.length && SW.t[si] <= v1; si++) {
      var sx0 = Math.round(xOf(SW.t[si]));
      if (sx0 < LABEL_W || (sx0 === swLast && SW.ok[si])) continue;
      swLast = sx0;
      var sy = laneTop(SW.n[si]);
      c.fillStyle = SW.ok[si] ? '#7048e8' : '#e03131';
      c.beginPath(); c.moveTo(sx0 - 4, sy - 3); c.lineTo(sx0 + 4, sy - 3); c.lineTo(sx0, sy + 4); c.fill();
    }
    // Token claims (assertLeader) as ticks along each node lane's bottom edge, one pixel column at a time; a claim
    // whose fenced write was rejected is red and tall, and linked to that write on the resource lane.
    var W0 = Math.max(0, lastLE(WK.t.length, function (q) { return WK.t[q]; }, v0)), lastClaim = new Int32Array(NN).fill(-2);
    for (var wi = W0; wi < WK.t.length && WK.t[wi] <= v1; wi++) {
      var wx = Math.floor(xOf(WK.t[wi])), wy = laneTop(WK.n[wi]) + LANE_H;
      if (wx < LABEL_W) continue;
      if (WK.ph[wi] !== 0) { c.fillStyle = '#1f2933'; c.fillRect(wx, wy - 10, 1, 10); c.fillRect(wx + (WK.ph[wi] === 1 ? 1 : -2), wy - 10, 2, 1); continue; }
      if (WK.w[wi] === 0) { c.fillStyle = '#e03131'; c.fillRect(wx - 1, wy - 9, 3, 9); continue; }
      if (wx === lastClaim[WK.n[wi]]) continue;
      lastClaim[WK.n[wi]] = wx;
      c.fillStyle = WK.w[wi] === 1 ? 'rgba(31,41,51,.75)' : 'rgba(134,142,150,.8)'; c.fillRect(wx, wy - 5, 1, 5);
    }
    // Resource: accepted writes as short green ticks, rejected ones as tall red ticks.
    c.fillStyle = '#f8f9fa'; c.fillRect(LABEL_W, resTop, right - LABEL_W, RES_H);
    var R = D.res, rs = Math.max(0, lastLE(R.t.length, function (q) { return R.t[q]; }, v0));
    var lastOk = -2, lastBad = -2, lastText = -100;
    for (var r = rs; r < R.t.length && R.t[r] <= v1; r++) {
      var rx = Math.floor(xOf(R.t[r]));
      if (rx < LABEL_W) continue;
      if (R.ok[r]) {
        if (rx === lastOk) continue;
        lastOk = rx; c.fillStyle = nodeColor(R.n[r]); c.fillRect(rx, resTop + RES_H - 12, 1, 12);
        c.fillStyle = '#2f9e44'; c.fillRect(rx, resTop + RES_H - 3, 1, 3);
        if (rx - lastText > 40) { c.fillStyle = '#495057'; c.font = '9px system-ui'; c.fillText('t' + R.tok[r], rx + 2, resTop + 10); lastText = rx; }
      } else {
        if (rx === lastBad) continue;
        lastBad = rx; c.fillStyle = '#e03131'; c.fillRect(rx - 1, resTop, 3, RES_H);
      }
    }
    // A rejected write's claim → write link (the claim may be far earlier: a pause between assertLeader and the write).
    c.strokeStyle = '#e03131'; c.lineWidth = 1; c.setLineDash([3, 2]);
    for (r = 0; r < R.t.length; r++) {
      if (R.ok[r] || R.ct[r] < 0 || R.ct[r] > v1 || R.t[r] < v0) continue;
      c.beginPath(); c.moveTo(xOf(R.ct[r]), laneTop(R.n[r]) + LANE_H); c.lineTo(xOf(R.t[r]), resTop); c.stroke();
    }
    c.setLineDash([]);
    // Writes that sat in a resource-link queue: a line along the resource lane from the send (t − delayedMs, a dot)
    // to the arrival, and an outline around the write.
    c.strokeStyle = RDELAY_C; c.fillStyle = RDELAY_C; c.lineWidth = 2;
    for (var dq = 0; dq < RDL.i.length; dq++) {
      var dr = RDL.i[dq], tArr = R.t[dr], tSent = tArr - RDL.ms[dq];
      if (tArr < v0 || tSent > v1) continue;
      var dx0 = Math.max(LABEL_W, xOf(tSent)), dx1 = Math.min(right, xOf(tArr)), dy = resTop + RES_H - 8;
      c.beginPath(); c.moveTo(dx0, dy); c.lineTo(dx1, dy); c.stroke();
      if (tSent >= v0) c.fillRect(dx0 - 1.5, dy - 3, 3, 6);
      if (tArr <= v1) c.strokeRect(Math.floor(dx1) - 3, resTop + 1, 7, RES_H - 2);
    }
    c.lineWidth = 1;
    // Agent lanes: record state bands, heartbeats (aggregated per pixel), claim/complete ticks, requeue markers.
    for (var g = 0; g < NA; g++) {
      var ay = agentTop(g);
      c.fillStyle = '#f8f9fa'; c.fillRect(LABEL_W, ay, right - LABEL_W, AG_H);
      agSpans[g].forEach(function (sp) {
        if (sp.b < v0 || sp.a > v1) return;
        var a = Math.max(LABEL_W, xOf(sp.a)), b = Math.min(right, xOf(sp.b));
        c.fillStyle = AG_STATE_C[AG_STATE[sp.s]]; c.fillRect(a, ay, Math.max(1, b - a), AG_H);
      });
      // Out of the agent index: greyed from the retirement until it is indexed again (a thin strip of the record's
      // state stays visible along the lane's edges), with a dashed rule through the middle.
      agRet[g].forEach(function (r) {
        if (r.until < v0 || r.t > v1) return;
        var a = Math.max(LABEL_W, xOf(r.t)), b = Math.min(right, xOf(r.until));
        if (b <= a) return;
        c.fillStyle = RETIRED_C; c.fillRect(a, ay + 3, b - a, AG_H - 6);
        c.fillStyle = '#868e96';
        for (var dx = a + 4; dx < b; dx += 6) c.fillRect(dx, ay + AG_H / 2 - 0.5, Math.min(3, b - dx), 1);
      });
    }
    D.faults.forEach(function (f) { if (f.g !== undefined && f.b >= v0 && f.a <= v1) drawFault(c, f, agentTop(f.g), AG_H); });
    var B = AG.beats, lastBeat = new Int32Array(NA).fill(-2);
    c.fillStyle = '#087f5b';
    for (var bi = Math.max(0, lastLE(B.t.length, function (q) { return B.t[q]; }, v0)); bi < B.t.length && B.t[bi] <= v1; bi++) {
      var bx = Math.floor(xOf(B.t[bi]));
      if (bx < LABEL_W || bx === lastBeat[B.g[bi]]) continue;
      lastBeat[B.g[bi]] = bx; c.fillRect(bx, agentTop(B.g[bi]), 1, 3);
    }
    var lastTick = {};
    for (var ei = Math.max(0, lastLE(AE.t.length, function (q) { return AE.t[q]; }, v0)); ei < AE.t.length && AE.t[ei] <= v1; ei++) {
      var ex = Math.floor(xOf(AE.t[ei])), ek = AG_EV[AE.k[ei]], ey = agentTop(AE.g[ei]);
      if (ex < LABEL_W) continue;
      c.fillStyle = AG_EV_C[ek];
      if (ek === 'claim' || ek === 'complete') {
        var key = AE.g[ei] + ek;
        if (lastTick[key] === ex) continue;
        lastTick[key] = ex;
        if (ek === 'claim') c.fillRect(ex, ey + 4, 1, AG_H - 4); else c.fillRect(ex, ey + AG_H - 6, 3, 6);
      } else if (ek === 'requeue' || ek === 'release') {
        c.beginPath(); c.moveTo(ex - 5, ey + AG_H); c.lineTo(ex + 5, ey + AG_H); c.lineTo(ex, ey + 2); c.fill();
        c.strokeStyle = '#fff'; c.lineWidth = 1; c.stroke();
      } else if (ek === 'stale') {
        c.fillRect(ex - 1, ey - 1, 3, AG_H + 2);
      } else if (ek === 'retire' || ek === 'reindex') {
        // Retirement: a bar through the lane under a diamond on its top edge (filled; hollow for a sweep's re-indexing).
        c.fillRect(ex - 1, ey - 2, 3, AG_H + 4);
        c.beginPath(); c.moveTo(ex + 0.5, ey - 3); c.lineTo(ex + 4.5, ey + 1); c.lineTo(ex + 0.5, ey + 5); c.lineTo(ex - 3.5, ey + 1); c.closePath();
        if (ek === 'retire') c.fill(); else { c.strokeStyle = AG_EV_C.reindex; c.lineWidth = 1.5; c.stroke(); }
      } else {
        c.fillRect(ex, ey, 2, AG_H);
      }
    }
    // Violations.
    markers = [];
    D.violations.forEach(function (v) {
      if (v.t < v0 || v.t > v1) return;
      var vx = Math.round(xOf(v.t));
      markers.push(vx);
      c.strokeStyle = v.expected ? '#f08c00' : '#e03131'; c.lineWidth = 2; c.setLineDash(v.expected ? [5, 3] : []);
      c.beginPath(); c.moveTo(vx, AXIS_H - 6); c.lineTo(vx, H - 6); c.stroke(); c.setLineDash([]);
      c.fillStyle = v.expected ? '#f08c00' : '#e03131';
      c.beginPath(); c.moveTo(vx - 6, 13); c.lineTo(vx + 6, 13); c.lineTo(vx, AXIS_H - 1); c.fill();
    });
  }

  function drawOverlay() {
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(base, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (N === 0) return;
    var t = T.t[cur];
    if (t < v0 || t > v1) return;
    var x = Math.round(xOf(t)) + 0.5;
    ctx.strokeStyle = '#1c7ed6'; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(x, AXIS_H - 2); ctx.lineTo(x, H - 6); ctx.stroke();
    var y = laneTop(T.n[cur]);
    ctx.strokeStyle = '#1c7ed6'; ctx.lineWidth = 2; ctx.strokeRect(x - 4, y - 1, 8, LANE_H + 2);
  }

  // Interaction: wheel zoom, drag pan, click seek, hover tooltip.
  var tip = $('tooltip'), drag = null;
  canvas.addEventListener('wheel', function (e) {
    e.preventDefault();
    var rect = canvas.getBoundingClientRect(), mx = e.clientX - rect.left;
    if (mx < LABEL_W) return;
    var tm = tOf(mx), f = Math.pow(1.0015, e.deltaY);
    v0 = tm - (tm - v0) * f; v1 = tm + (v1 - tm) * f; clampView(); drawBase(); drawOverlay();
  }, { passive: false });
  canvas.addEventListener('mousedown', function (e) { drag = { x: e.clientX, v0: v0, v1: v1, moved: false }; });
  window.addEventListener('mouseup', function (e) {
    if (!drag) return;
    var d = drag; drag = null;
    if (!d.moved) {
      var rect = canvas.getBoundingClientRect(), mx = e.clientX - rect.left;
      if (mx >= LABEL_W) seekTime(tOf(mx));
    }
  });
  window.addEventListener('mousemove', function (e) {
    if (drag) {
      var dx = e.clientX - drag.x;
      if (Math.abs(dx) > 3) drag.moved = true;
      if (drag.moved) {
        var dt = dx / (W - LABEL_W - 8) * (drag.v1 - drag.v0);
        v0 = drag.v0 - dt; v1 = drag.v1 - dt; clampView(); drawBase(); drawOverlay();
      }
    }
  });
  canvas.addEventListener('dblclick', function () { v0 = D.start; v1 = D.end; drawBase(); drawOverlay(); });
  canvas.addEventListener('mousemove', function (e) {
    var rect = canvas.getBoundingClientRect(), mx = e.clientX - rect.left, my = e.clientY - rect.top;
    if (mx < LABEL_W || drag) { tip.hidden = true; return; }
    var t = tOf(mx), text = fmtT(t);
    var lane = Math.floor((my - AXIS_H) / (LANE_H + GAP));
    if (lane >= 0 && lane < NN && my - laneTop(lane) <= LANE_H) {
      var j = lastLE(N, function (k) { return T.t[k]; }, t);
      var s = stateIdxAt(lane, j < 0 ? -1 : j), ep = epochAt(lane, j);
      text += '\n' + nodes[lane] + ': ' + (s >= 0 ? D.states[s] : '—') + (ep >= 0 ? ' (epoch ' + ep + ')' : '');
      D.faults.forEach(function (f) { if ((f.n === lane || f.n === -1) && f.a <= t && (f.b >= t || Math.abs(xOf(f.a) - mx) < 3)) text += '\n' + faultName(f) + (f.d ? ' ' + f.d : ''); });
      var wq = lastLE(WK.t.length, function (k) { return WK.t[k]; }, tOf(mx + 3)), shown = 0;
      for (; wq >= 0 && xOf(WK.t[wq]) > mx - 4 && shown < 4; wq--) {
        if (WK.n[wq] !== lane) continue;
        shown++;
        text += '\n' + (WK.ph[wq] === 0 ? 'claimed token ' + WK.tok[wq] + (WK.w[wq] === 0 ? ' → its write was REJECTED' : WK.w[wq] === 1 ? ' → write accepted' : '') : 'leader work ' + (WK.ph[wq] === 1 ? 'started' : 'stopped') + ' (token ' + WK.tok[wq] + ')') + ' at ' + fmtT(WK.t[wq]);
      }
      for (var sq = 0; sq < AG.sweeps.t.length; sq++) if (AG.sweeps.n[sq] === lane && Math.abs(xOf(AG.sweeps.t[sq]) - mx) < 4) text += '\nsweep' + (AG.sweeps.ep[sq] >= 0 ? ' (epoch ' + AG.sweeps.ep[sq] + ')' : '') + (AG.sweeps.ok[sq] ? '' : ' REFUSED by the store');
      AG.stalls.forEach(function (st) { if (st.n === lane && st.a <= t && st.b >= t) text += '\nsweep stalled since ' + fmtT(st.a); });
    } else if (my >= resTop && my <= resTop + RES_H) {
      var R = D.res, q = lastLE(R.t.length, function (k) { return R.t[k]; }, tOf(mx + 3));
      if (q >= 0 && Math.abs(xOf(R.t[q]) - mx) < 4) text += '\n' + nodes[R.n[q]] + ' wrote with token ' + R.tok[q] + ': ' + (R.ok[q] ? 'accepted' : 'REJECTED (high-water ' + R.hw[q] + ')') + (R.ct[q] >= 0 ? '\ntoken claimed at ' + fmtT(R.ct[q]) + ' (' + (R.t[q] - R.ct[q]).toFixed(1) + ' ms before)' : '') +
        (delayOf[q] ? '\nDELAYED: sat ' + delayOf[q] + ' ms in the resource-link queue (sent at ' + fmtT(R.t[q] - delayOf[q]) + ')' : '');
    } else if (NA && my >= agentTop(0)) {
      var ag = Math.floor((my - agentTop(0)) / (AG_H + AG_GAP));
      if (ag >= 0 && ag < NA && my - agentTop(ag) <= AG_H) {
        var sp = agentSpanAt(ag, t);
        text += '\nagent ' + agents[ag] + ': ' + (sp ? AG_STATE[sp.s] + ' (incarnation ' + sp.inc + ')' : '—');
        var rt2 = retiredAt(ag, t);
        if (rt2) text += ', NOT INDEXED: retired by ' + retiredBy(rt2) + ' at ' + fmtT(rt2.t) + (rt2.back ? ' until ' + fmtT(rt2.back.t) : '');
        D.faults.forEach(function (f) { if (f.g === ag && f.a <= t && (f.b >= t || Math.abs(xOf(f.a) - mx) < 3)) text += '\n' + faultName(f) + (f.d ? ' ' + f.d : ''); });
        var eq = lastLE(AE.t.length, function (k) { return AE.t[k]; }, tOf(mx + 4)), n2 = 0;
        for (; eq >= 0 && xOf(AE.t[eq]) > mx - 5 && n2 < 6; eq--) if (AE.g[eq] === ag) { n2++; text += '\n' + fmtT(AE.t[eq]) + ' ' + agentEventText(eq); }
      }
    }
    D.violations.forEach(function (v) { if (Math.abs(xOf(v.t) - mx) < 4) text += '\nviolation: ' + v.checker + ' — ' + v.message; });
    tip.textContent = text; tip.hidden = false;
    tip.style.left = Math.min(mx + 12, W - 260) + 'px'; tip.style.top = (my + 14) + 'px';
  });
  canvas.addEventListener('mouseleave', function () { tip.hidden = true; });
  window.addEventListener('resize', resize);

  resize();
  setCur(0, true);
  var firstViolation = D.violations.length ? D.violations[0] : null;

  window.viewer = {
    nodes: nodes.slice(), count: N, violations: D.violations, firstViolation: firstViolation,
    current: function () { return cur; },
    setStep: function (i) { setCur(i); return cur; },
    next: function () { return stepBy(1); },
    prev: function () { return stepBy(-1); },
    seekTime: function (t) { seekTime(t); return cur; },
    focus: function (name) { setFocus(name === undefined || name === null ? -1 : nodes.indexOf(name)); },
    stateOf: function (name) { var s = stateIdxAt(nodes.indexOf(name), cur); return s >= 0 ? D.states[s] : null; },
    epochOf: function (name) { var e = epochAt(nodes.indexOf(name), cur); return e >= 0 ? e : null; },
    transition: function (i) { i = i === undefined ? cur : i; return { t: T.t[i], node: nodes[T.n[i]], from: D.states[T.f[i]], to: D.states[T.s[i]], event: D.events[T.e[i]], epoch: T.ep[i] }; },
    markers: function () { return markers.slice(); },
    agents: agents.slice(),
    agentStateAt: function (name, t) { var sp = agentSpanAt(agents.indexOf(name), t === undefined ? (N ? T.t[cur] : D.start) : t); return sp ? AG_STATE[sp.s] : null; },
    agentEvents: function (name) { var g = agents.indexOf(name), out = []; for (var j = 0; j < AE.t.length; j++) if (AE.g[j] === g) out.push({ t: AE.t[j], kind: AG_EV[AE.k[j]], task: AE.task[j] >= 0 ? AG.tasks[AE.task[j]] : null, token: AE.tok[j], note: AE.note[j] >= 0 ? AG.notes[AE.note[j]] : null }); return out; },
    handoffs: function () { return handoffs.map(function (j) { return { t: AE.t[j], kind: AG_EV[AE.k[j]], agent: agents[AE.g[j]], task: AE.task[j] >= 0 ? AG.tasks[AE.task[j]] : null, token: AE.tok[j], note: AE.note[j] >= 0 ? AG.notes[AE.note[j]] : null }; }); },
    retirements: function () { return RET.map(function (r) { return { t: r.t, agent: agents[r.g], by: r.by, sweep: r.sweep, epoch: r.epoch, state: r.state, incarnation: r.inc, claims: r.claims.slice(), reserved: r.reserved.slice(), until: r.until, back: r.back }; }); },
    indexedAt: function (name, t) { return !retiredAt(agents.indexOf(name), t === undefined ? (N ? T.t[cur] : D.start) : t); },
    // Canvas geometry in CSS pixels (for tests that read what was drawn): x of a time, top of a node / agent lane.
    geometry: function () { return { dpr: dpr, laneH: LANE_H, agentH: AG_H, resTop: resTop, laneTops: nodes.map(function (_, n) { return laneTop(n); }), agentTops: agents.map(function (_, g) { return agentTop(g); }) }; },
    xOf: function (t) { return xOf(t); },
    delayedWrites: function () { return RDL.i.map(function (j, q) { return { t: D.res.t[j], node: nodes[D.res.n[j]], token: D.res.tok[j], accepted: D.res.ok[j] === 1, delayedMs: RDL.ms[q], sentT: D.res.t[j] - RDL.ms[q] }; }); },
    faults: function () { return D.faults.map(function (f) { return { node: f.n >= 0 ? nodes[f.n] : null, kind: f.k, label: faultName(f), from: f.a, to: f.b }; }); },
    claims: function () { var out = []; for (var j = 0; j < WK.t.length; j++) if (WK.ph[j] === 0) out.push({ t: WK.t[j], node: nodes[WK.n[j]], token: WK.tok[j], write: WK.w[j] }); return out; },
    view: function () { return [v0, v1]; },
    readyAt: performance.now(),
    ready: true
  };
  document.body.setAttribute('data-ready', 'true');
})();
`;
