(function () {
  "use strict";
  const scriptStart = performance.now();
  // Everything shown comes from the JSON block and reaches the page through textContent or
  // setAttribute only: log text is hostile and is never parsed as HTML.
  const D = JSON.parse(document.getElementById("timeline-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const GUTTER = 260, RIGHT = 16, INST_H = 24, LANE_H = 30, BIN = 7, MIN_SPAN = 100;
  const MARK_Y = 13;  // markers sit above the role strip at the bottom of the lane
  const SEV = ["info", "warning", "critical"];
  const ROLE_COLOR = { master: "#3b6fd8", replica: "#2f9e74", down: "#d64545", unknown: "#aab4c0",
    child: "#9b7bd1", sentinel: "#9b7bd1" };
  const CAT_COLOR = { server: "#475569", crash: "#b42318", memory: "#db2777", role: "#7c3aed",
    failover: "#c026d3", master_link: "#ea580c", sync: "#0891b2", replica: "#0d9488", client: "#be123c",
    bgsave: "#65a30d", aof: "#ca8a04", disk: "#854d0e", security: "#dc2626", config: "#78716c",
    cluster: "#4f46e5", warning: "#1e40af" };
  const PALETTE = ["#2563eb", "#9333ea", "#16a34a", "#e11d48", "#0284c7", "#a16207", "#4338ca", "#be185d"];
  const TICKS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5,
    18e5, 36e5, 72e5, 108e5, 216e5, 432e5, 864e5, 1728e5, 6048e5, 12096e5, 2592e6];
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  const lanes = D.lanes, events = D.events, spans = D.spans;
  const $ = (id) => document.getElementById(id);
  const chart = $("chart"), axisSvg = $("axis"), laneSvg = $("lanes"), tip = $("tip");
  const axisWrap = $("axis-wrap"), toolbar = document.querySelector(".toolbar");

  function category(kind) { return String(kind).split(".")[0]; }
  function hashColor(s) {
    let h = 0;
    for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
    return PALETTE[h % PALETTE.length];
  }
  function catColor(c) { return CAT_COLOR[c] || hashColor(c); }
  function pad(n, w) { return String(n).padStart(w || 2, "0"); }
  function fmtTime(ms, withMs) {
    const d = new Date(ms);
    const s = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
    return withMs === false ? s : s + "." + pad(d.getUTCMilliseconds(), 3);
  }
  function fmtSpan(ms) {
    const s = ms / 1000;
    if (s < 1) return Math.round(ms) + " ms";
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
    return (s / 86400).toFixed(1) + " days";
  }
  function el(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function hel(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function laneName(i) {
    const l = lanes[i];
    return [l.inst, l.shard, l.label].filter(Boolean).join(" / ");
  }

  // ---- indexes -------------------------------------------------------------------------------
  const laneEvents = lanes.map(() => []);
  events.forEach((e, i) => laneEvents[e[0]].push(i));
  const laneSpans = lanes.map(() => []);
  spans.forEach((s) => laneSpans[s[0]].push(s));
  const catCounts = new Map();
  events.forEach((e) => { const c = category(D.kinds[e[2]]); catCounts.set(c, (catCounts.get(c) || 0) + 1); });

  const rows = [];
  let lastInst = null, lastShard = null;
  lanes.forEach((l, i) => {
    const instKey = l.iid + "\u0000" + l.inst;
    if (instKey !== lastInst) {
      rows.push({ type: "inst", lane: i });
      lastInst = instKey; lastShard = null;
    }
    rows.push({ type: "lane", lane: i, firstOfShard: l.shard !== lastShard });
    lastShard = l.shard;
  });
  let height = 0;
  rows.forEach((r) => { r.y = height; height += r.type === "inst" ? INST_H : LANE_H; });
  const laneY = new Array(lanes.length);
  rows.forEach((r) => { if (r.type === "lane") laneY[r.lane] = r.y; });

  // ---- state ---------------------------------------------------------------------------------
  const full0 = D.t0, full1 = Math.max(D.t1, D.t0 + MIN_SPAN);
  const margin = (full1 - full0) * 0.01;
  const state = { v0: full0 - margin, v1: full1 + margin, minSev: 0, hidden: new Set(), bins: [], selected: -1 };
  const stats = { lanes: lanes.length, events: events.length, markers: 0, markerEvents: 0, bands: 0,
    renderMs: 0, firstRenderMs: 0, renders: 0, ready: false };
  window.__timeline = stats;

  function visible(e) { return e[3] >= state.minSev && !state.hidden.has(category(D.kinds[e[2]])); }
  function lowerBound(list, t) {
    let lo = 0, hi = list.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (events[list[mid]][1] < t) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function geometry() {
    const W = Math.max(640, chart.clientWidth);
    return { W: W, plotW: W - GUTTER - RIGHT };
  }

  // ---- drawing -------------------------------------------------------------------------------
  function markerShape(x, y, sev, multi) {
    const s = multi ? 1.12 : 1;
    if (sev === 2) {
      const r = 6.5 * s;
      return el("path", { d: `M${x} ${y - r}L${x + r} ${y}L${x} ${y + r}L${x - r} ${y}Z` });
    }
    if (sev === 1) {
      const r = 5.5 * s;
      return el("path", { d: `M${x} ${y - r}L${x + r} ${y + r * 0.8}L${x - r} ${y + r * 0.8}Z` });
    }
    return el("circle", { cx: x, cy: y, r: 3.8 * s });
  }

  function pickStep(span, plotW) {
    for (const s of TICKS) if (s * plotW / span >= 110) return s;
    return TICKS[TICKS.length - 1];
  }
  function tickLabel(t, step) {
    const d = new Date(t);
    const midnight = d.getUTCHours() === 0 && d.getUTCMinutes() === 0 && d.getUTCSeconds() === 0 &&
      d.getUTCMilliseconds() === 0;
    const day = MONTHS[d.getUTCMonth()] + " " + d.getUTCDate();
    if (step >= 864e5 || (midnight && step >= 6e4)) return { text: day, day: true };
    if (step >= 6e4) return { text: pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()), day: false };
    const hms = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
    if (step >= 1000) return { text: hms, day: midnight };
    return { text: hms + "." + pad(d.getUTCMilliseconds(), 3), day: false };
  }

  function render() {
    const started = performance.now();
    const g = geometry(), plotW = g.plotW, W = g.W;
    const v0 = state.v0, v1 = state.v1, k = plotW / (v1 - v0);
    const X = (t) => GUTTER + (t - v0) * k;

    // Axis (sticky) and the vertical grid share the ticks.
    const step = pickStep(v1 - v0, plotW);
    const axis = document.createDocumentFragment();
    const grid = el("g", { class: "gridlines" });
    axis.appendChild(el("text", { x: 12, y: 21, class: "axis-caption" }, "UTC"));
    for (let t = Math.ceil(v0 / step) * step; t <= v1; t += step) {
      const x = X(t), lab = tickLabel(t, step);
      axis.appendChild(el("line", { x1: x, x2: x, y1: 26, y2: 34, stroke: "#b8c0cc" }));
      axis.appendChild(el("text", { x: x, y: 20, "text-anchor": "middle", class: lab.day ? "day" : "" }, lab.text));
      grid.appendChild(el("line", { x1: x, x2: x, y1: 0, y2: height, class: lab.day ? "grid day" : "grid" }));
    }
    axisWrap.style.top = toolbar.offsetHeight + "px";  // stick right under the (wrapping) toolbar
    axisSvg.setAttribute("width", W);
    axisSvg.setAttribute("height", 34);
    axisSvg.setAttribute("class", "axis");
    axisSvg.replaceChildren(axis);

    const frag = document.createDocumentFragment();
    const defs = el("defs", {});
    const clip = el("clipPath", { id: "plot-clip" });
    clip.appendChild(el("rect", { x: GUTTER, y: 0, width: plotW, height: height }));
    const lclip = el("clipPath", { id: "label-clip" });
    lclip.appendChild(el("rect", { x: 0, y: 0, width: GUTTER - 10, height: height }));
    defs.appendChild(clip); defs.appendChild(lclip);
    frag.appendChild(defs);

    const bg = el("g", {}), labels = el("g", { "clip-path": "url(#label-clip)" });
    rows.forEach((r, i) => {
      const l = lanes[r.lane];
      if (r.type === "inst") {
        bg.appendChild(el("rect", { x: 0, y: r.y, width: W, height: INST_H, class: "inst-row" }));
        const t = el("text", { x: 10, y: r.y + 16, class: "inst-label" }, l.inst);
        if (l.iid && l.iid !== l.inst) t.appendChild(el("title", {}, "instance id " + l.iid));
        labels.appendChild(t);
      } else {
        if (i % 2) bg.appendChild(el("rect", { x: 0, y: r.y, width: W, height: LANE_H, class: "row-alt" }));
        if (r.firstOfShard && l.shard) {
          bg.appendChild(el("line", { x1: 0, x2: W, y1: r.y + 0.5, y2: r.y + 0.5, stroke: "#e3e7ed" }));
          labels.appendChild(el("text", { x: 22, y: r.y + 18, class: "shard-label" }, l.shard));
        }
        labels.appendChild(el("text", { x: 118, y: r.y + 18, class: "lane-label", "data-lane": r.lane }, l.label));
      }
    });
    frag.appendChild(bg);
    frag.appendChild(labels);
    frag.appendChild(el("line", { x1: GUTTER - 0.5, x2: GUTTER - 0.5, y1: 0, y2: height, stroke: "#d9dee5" }));
    frag.appendChild(grid);
    frag.appendChild(el("rect", { x: GUTTER, y: 0, width: plotW, height: height, class: "plot-bg" }));

    const bands = el("g", { "clip-path": "url(#plot-clip)", "pointer-events": "none" });
    let nb = 0;
    lanes.forEach((l, li) => {
      const y = laneY[li];
      laneSpans[li].forEach((s, si) => {
        if (s[3] < v0 || s[2] > v1) return;
        const role = D.roles[s[1]];
        const x0 = Math.max(X(s[2]), GUTTER - 2), x1 = Math.min(X(s[3]), GUTTER + plotW + 2);
        const minW = role === "master" || role === "replica" ? 1 : 3;  // a short outage must stay visible
        const fill = ROLE_COLOR[role] || ROLE_COLOR.unknown, w = Math.max(minW, x1 - x0);
        // A light tint behind the markers, and a solid strip under them that no marker hides.
        bands.appendChild(el("rect", { x: x0, y: y + 3, width: w, height: LANE_H - 6, fill: fill,
          class: "band " + role, "data-role": role }));
        bands.appendChild(el("rect", { x: x0, y: y + LANE_H - 7, width: w, height: 4, fill: fill, class: "strip" }));
        nb++;
        if (si > 0 && s[2] >= v0) {  // a role change: a solid edge, visible at any zoom
          bands.appendChild(el("rect", { x: X(s[2]) - 1, y: y + 3, width: 2, height: LANE_H - 6,
            fill: fill, class: "band-edge" }));
        }
      });
    });
    frag.appendChild(bands);

    const marks = el("g", { "clip-path": "url(#plot-clip)", class: "markers" });
    const bins = [];
    let nEvents = 0;
    lanes.forEach((l, li) => {
      const list = laneEvents[li];
      let cur = null;
      for (let j = lowerBound(list, v0); j < list.length; j++) {
        const e = events[list[j]];
        if (e[1] > v1) break;
        if (!visible(e)) continue;
        const px = (e[1] - v0) * k, b = Math.floor(px / BIN);
        if (cur && cur.b === b) {
          cur.idx.push(list[j]);
          if (e[3] > cur.sev) { cur.sev = e[3]; cur.x = px; cur.top = list[j]; }
        } else {
          cur = { lane: li, b: b, x: px, sev: e[3], top: list[j], idx: [list[j]] };
          bins.push(cur);
        }
      }
    });
    bins.forEach((bin, bi) => {
      const e = events[bin.top], multi = bin.idx.length > 1;
      const m = markerShape(GUTTER + bin.x, laneY[bin.lane] + MARK_Y, bin.sev, multi);
      m.setAttribute("class", "marker " + SEV[bin.sev] + (multi ? " multi" : "") + (bi === state.selected ? " selected" : ""));
      m.setAttribute("fill", catColor(category(D.kinds[e[2]])));
      m.setAttribute("data-b", bi);
      m.setAttribute("data-n", bin.idx.length);
      m.setAttribute("data-e", bin.top);
      marks.appendChild(m);
      nEvents += bin.idx.length;
    });
    frag.appendChild(marks);
    state.bins = bins;

    laneSvg.setAttribute("width", W);
    laneSvg.setAttribute("height", height);
    laneSvg.replaceChildren(frag);

    $("range").textContent = fmtTime(v0, false) + " \u2013 " + fmtTime(v1, false) + " UTC (" + fmtSpan(v1 - v0) + ")";
    stats.markers = bins.length;
    stats.markerEvents = nEvents;
    stats.bands = nb;
    stats.renderMs = performance.now() - started;
    stats.renders++;
    if (stats.renders === 1) stats.firstRenderMs = stats.renderMs;
    stats.view = [v0, v1];
  }

  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  }

  // ---- zoom and pan --------------------------------------------------------------------------
  function clampView(a, b) {
    let span = Math.max(MIN_SPAN, b - a);
    const maxSpan = (full1 - full0) * 1.5 + 60000;
    if (span > maxSpan) { const c = (a + b) / 2; span = maxSpan; a = c - span / 2; b = c + span / 2; }
    const lo = full0 - span * 0.5, hi = full1 + span * 0.5;
    if (a < lo) { b += lo - a; a = lo; }
    if (b > hi) { a -= b - hi; b = hi; }
    state.v0 = a; state.v1 = a + span;
  }
  function zoomAt(t, factor) {
    clampView(t - (t - state.v0) * factor, t + (state.v1 - t) * factor);
    schedule();
  }
  function tAtClientX(clientX) {
    const rect = laneSvg.getBoundingClientRect(), g = geometry();
    const px = Math.min(Math.max(clientX - rect.left - GUTTER, 0), g.plotW);
    return state.v0 + px / g.plotW * (state.v1 - state.v0);
  }
  function reset() { state.v0 = full0 - margin; state.v1 = full1 + margin; schedule(); }
  function onWheel(e, always) {
    if (Math.abs(e.deltaX) > Math.abs(e.deltaY) || e.shiftKey) {
      const g = geometry(), d = (e.shiftKey ? e.deltaY : e.deltaX) / g.plotW * (state.v1 - state.v0);
      e.preventDefault();
      clampView(state.v0 + d, state.v1 + d);
      schedule();
      return;
    }
    if (!always && !e.ctrlKey && !e.metaKey && !e.altKey) return;  // plain wheel scrolls the page
    e.preventDefault();
    zoomAt(tAtClientX(e.clientX), Math.exp(e.deltaY * 0.0018));
  }
  axisSvg.addEventListener("wheel", (e) => onWheel(e, true), { passive: false });
  laneSvg.addEventListener("wheel", (e) => onWheel(e, false), { passive: false });
  let drag = null;
  laneSvg.addEventListener("pointerdown", (e) => {
    if (e.button !== 0 || (e.target.classList && e.target.classList.contains("marker"))) return;
    const rect = laneSvg.getBoundingClientRect();
    if (e.clientX - rect.left < GUTTER) return;
    drag = { x: e.clientX, v0: state.v0, v1: state.v1, moved: false };
    laneSvg.setPointerCapture(e.pointerId);
    chart.classList.add("dragging");
  });
  laneSvg.addEventListener("pointermove", (e) => {
    if (drag) {
      const dx = e.clientX - drag.x;
      if (Math.abs(dx) > 2) drag.moved = true;
      const d = -dx / geometry().plotW * (drag.v1 - drag.v0);
      clampView(drag.v0 + d, drag.v1 + d);
      schedule();
      return;
    }
    const m = e.target.closest && e.target.closest(".marker");
    if (m) showTip(state.bins[+m.getAttribute("data-b")], e.clientX, e.clientY); else hideTip();
  });
  laneSvg.addEventListener("pointerup", (e) => {
    if (drag) { laneSvg.releasePointerCapture(e.pointerId); chart.classList.remove("dragging"); drag = null; }
  });
  laneSvg.addEventListener("pointerleave", hideTip);
  laneSvg.addEventListener("dblclick", (e) => {
    const rect = laneSvg.getBoundingClientRect();
    if (e.clientX - rect.left >= GUTTER) zoomAt(tAtClientX(e.clientX), 0.5);
  });
  laneSvg.addEventListener("click", (e) => {
    const m = e.target.closest && e.target.closest(".marker");
    if (!m) return;
    const bi = +m.getAttribute("data-b");
    state.selected = bi;
    showDetails(state.bins[bi].idx);
    schedule();
  });
  const center = () => (state.v0 + state.v1) / 2;
  $("zoom-in").addEventListener("click", () => zoomAt(center(), 0.5));
  $("zoom-out").addEventListener("click", () => zoomAt(center(), 2));
  $("reset").addEventListener("click", reset);
  $("severity").addEventListener("change", (e) => { state.minSev = +e.target.value; state.selected = -1; schedule(); });
  document.addEventListener("keydown", (e) => {
    if (e.target && (e.target.tagName === "SELECT" || e.target.tagName === "INPUT")) return;
    const span = state.v1 - state.v0;
    if (e.key === "+" || e.key === "=") zoomAt(center(), 0.5);
    else if (e.key === "-") zoomAt(center(), 2);
    else if (e.key === "0") reset();
    else if (e.key === "ArrowLeft") { clampView(state.v0 - span * 0.2, state.v1 - span * 0.2); schedule(); }
    else if (e.key === "ArrowRight") { clampView(state.v0 + span * 0.2, state.v1 + span * 0.2); schedule(); }
    else if (e.key === "Escape") { $("details").style.display = "none"; state.selected = -1; schedule(); }
    else return;
    e.preventDefault();
  });
  window.addEventListener("resize", schedule);

  // ---- tooltip and details -------------------------------------------------------------------
  function fileRef(e) { return D.files[e[6]] + ":" + e[7]; }
  function shortFile(e) { const f = D.files[e[6]]; return f.slice(f.lastIndexOf("/") + 1) + ":" + e[7]; }
  function showTip(bin, cx, cy) {
    if (!bin) return;
    tip.replaceChildren();
    const add = (cls, text) => { const d = hel("div", cls, text); tip.appendChild(d); return d; };
    if (bin.idx.length === 1) {
      const e = events[bin.idx[0]];
      add("t", fmtTime(e[1]) + " UTC \u00b7 " + SEV[e[3]]);
      add("k", D.kinds[e[2]] + " \u2014 " + laneName(e[0]) + " (" + D.roles[e[4]] + ")");
      add("s", e[5]);
      add("f", shortFile(e));
    } else {
      const counts = [0, 0, 0];
      bin.idx.forEach((i) => counts[events[i][3]]++);
      add("t", fmtTime(events[bin.idx[0]][1]) + " \u2192 " + fmtTime(events[bin.idx[bin.idx.length - 1]][1]).slice(11));
      add("k", bin.idx.length + " events on " + laneName(bin.lane) + " \u00b7 " + counts[2] + " critical, " +
        counts[1] + " warning, " + counts[0] + " info");
      bin.idx.slice(0, 6).forEach((i) => { const e = events[i]; add("s", fmtTime(e[1]).slice(11) + "  " + D.kinds[e[2]] + ": " + e[5]); });
      if (bin.idx.length > 6) add("f", "\u2026 click for all of them, or zoom in");
    }
    tip.style.display = "block";
    const w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.min(cx + 14, window.innerWidth - w - 8) + "px";
    tip.style.top = (cy + 16 + h > window.innerHeight ? cy - h - 12 : cy + 16) + "px";
  }
  function hideTip() { tip.style.display = "none"; }

  function eventRow(i, clickable) {
    const e = events[i], tr = hel("tr", clickable ? "clickable" : "");
    tr.appendChild(hel("td", "time", fmtTime(e[1])));
    const sev = hel("td"); sev.appendChild(hel("span", "sev " + SEV[e[3]], SEV[e[3]])); tr.appendChild(sev);
    tr.appendChild(hel("td", "", D.kinds[e[2]]));
    tr.appendChild(hel("td", "", laneName(e[0])));
    tr.appendChild(hel("td", "", D.roles[e[4]]));
    const extra = e[8] ? " (" + Object.keys(e[8]).map((k) => k + "=" + e[8][k]).join(", ") + ")" : "";
    tr.appendChild(hel("td", "sum", e[5] + extra));
    tr.appendChild(hel("td", "file", fileRef(e)));
    if (clickable) tr.addEventListener("click", () => focusEvent(i));
    return tr;
  }
  function table(idxs, limit, clickable) {
    const t = hel("table"), head = hel("tr");
    ["Time (UTC)", "Severity", "Kind", "Replica", "Role", "Summary", "File:line"].forEach((h) => head.appendChild(hel("th", "", h)));
    const thead = hel("thead"); thead.appendChild(head); t.appendChild(thead);
    const body = hel("tbody");
    idxs.slice(0, limit).forEach((i) => body.appendChild(eventRow(i, clickable)));
    t.appendChild(body);
    return t;
  }
  function showDetails(idxs) {
    const box = $("details");
    box.replaceChildren();
    const head = hel("div", "head");
    head.appendChild(hel("span", "", idxs.length === 1 ? "Event" : idxs.length + " events"));
    const close = hel("button", "", "\u00d7");
    close.title = "Close (Esc)";
    close.addEventListener("click", () => { box.style.display = "none"; state.selected = -1; schedule(); });
    head.appendChild(close);
    box.appendChild(head);
    box.appendChild(table(idxs, 300, false));
    if (idxs.length > 300) box.appendChild(hel("div", "more", "\u2026 and " + (idxs.length - 300) + " more: zoom in to separate them."));
    box.style.display = "block";
  }
  function focusEvent(i) {
    const e = events[i], span = Math.min(Math.max((state.v1 - state.v0) / 8, 20000), 20 * 60000);
    clampView(e[1] - span / 2, e[1] + span / 2);
    state.selected = -1;
    render();
    state.bins.forEach((b, bi) => { if (b.idx.indexOf(i) >= 0) state.selected = bi; });
    render();
    showDetails([i]);
    const y = laneY[e[0]];
    window.scrollTo({ top: Math.max(0, chart.getBoundingClientRect().top + window.scrollY + y - 160), behavior: "auto" });
  }

  // ---- legend and the table of notable events ------------------------------------------------
  function legend() {
    const box = $("legend");
    const roles = hel("div", "group"); roles.appendChild(hel("span", "title", "Role"));
    ["master", "replica", "down", "unknown"].forEach((r) => {
      const it = hel("span", "item"), sw = hel("span", "swatch");
      sw.style.background = ROLE_COLOR[r] + "40"; sw.style.borderBottom = "4px solid " + ROLE_COLOR[r];
      it.appendChild(sw); it.appendChild(document.createTextNode(r)); roles.appendChild(it);
    });
    const sev = hel("div", "group"); sev.appendChild(hel("span", "title", "Severity"));
    SEV.forEach((s, i) => {
      const it = hel("span", "item"), svg = document.createElementNS(SVGNS, "svg");
      svg.setAttribute("width", 16); svg.setAttribute("height", 16);
      const m = markerShape(8, 8, i, false);
      m.setAttribute("class", "marker " + s); m.setAttribute("fill", "#66768a");
      svg.appendChild(m); it.appendChild(svg); it.appendChild(document.createTextNode(s)); sev.appendChild(it);
    });
    const kinds = hel("div", "group"); kinds.appendChild(hel("span", "title", "Kinds (click to hide)"));
    [...catCounts.keys()].sort().forEach((c) => {
      const it = hel("span", "item kind"), dot = hel("span", "dot");
      dot.style.background = catColor(c);
      it.appendChild(dot); it.appendChild(document.createTextNode(c + " "));
      it.appendChild(hel("span", "n", String(catCounts.get(c))));
      it.setAttribute("data-cat", c);
      it.addEventListener("click", () => {
        if (state.hidden.has(c)) state.hidden.delete(c); else state.hidden.add(c);
        it.classList.toggle("off", state.hidden.has(c));
        state.selected = -1; schedule();
      });
      kinds.appendChild(it);
    });
    box.replaceChildren(roles, sev, kinds);
  }
  function notable() {
    const idx = [];
    events.forEach((e, i) => { if (e[3] >= 1) idx.push(i); });
    idx.sort((a, b) => events[a][1] - events[b][1] || events[b][3] - events[a][3]);
    const box = $("notable");
    box.replaceChildren();
    box.appendChild(hel("h2", "", "Warnings and critical events (" + idx.length + ")"));
    if (!idx.length) { box.appendChild(hel("div", "more", "None in this window.")); return; }
    const scroll = hel("div", "scroll");
    scroll.appendChild(table(idx, 1000, true));
    box.appendChild(scroll);
    if (idx.length > 1000) box.appendChild(hel("div", "more", "Showing the first 1000; filter with `harvester events --kind` for the rest."));
  }

  // For tests and benches: show [a, b] (epoch ms) and draw now.
  stats.setView = (a, b) => { clampView(a, b); render(); return stats.view; };

  if (!lanes.length) {
    chart.replaceChildren(hel("div", "empty", "No events and no role spans in the selected window."));
    stats.ready = true;
    return;
  }
  stats.setupMs = performance.now() - scriptStart;  // JSON parse and the per-lane indexes
  legend();
  let t = performance.now();
  notable();
  stats.tableMs = performance.now() - t;
  render();
  t = performance.now();
  void document.body.offsetHeight;  // let layout finish, so totalMs is what a user waits for
  stats.layoutMs = performance.now() - t;
  stats.totalMs = performance.now() - scriptStart;
  stats.ready = true;
})();
