// pointsam attention viewer: reads the scene JSON embedded in the page and
// draws it with the embedded plotly.js (WebGL scatter3d). No network access.
(function () {
  "use strict";
  const T0 = performance.now();
  const TYPES = { float32: Float32Array, uint16: Uint16Array, int32: Int32Array, uint8: Uint8Array };
  function bytes(b64) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(b64);
    const bin = atob(b64), u = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
    return u;
  }
  function array(o) {  // a typed array from {__nd__} or {__q16__, lo, hi}
    if (o.__q16__) {
      const q = array(o.__q16__), a = new Float32Array(q.length), s = (o.hi - o.lo) / 65534;
      for (let i = 0; i < q.length; i++) a[i] = q[i] === 65535 ? NaN : o.lo + q[i] * s;
      a.shape = o.__q16__.shape;
      return a;
    }
    const u = bytes(o.b64);
    const a = new TYPES[o.dtype](u.buffer, u.byteOffset, u.byteLength / TYPES[o.dtype].BYTES_PER_ELEMENT);
    a.shape = o.shape;
    return a;
  }
  function decode(o) {  // arrays are decoded lazily, on first use
    if (Array.isArray(o)) return o.map(decode);
    if (o === null || typeof o !== "object") return o;
    const out = {};
    for (const k in o) {
      const v = o[k];
      if (v && typeof v === "object" && (v.__nd__ || v.__q16__)) {
        let cached = null;
        Object.defineProperty(out, k, { enumerable: true, get: () => cached || (cached = array(v)) });
      } else out[k] = decode(v);
    }
    return out;
  }
  const S = decode(JSON.parse(document.getElementById("pointsam-scene").textContent));
  const T_PARSED = performance.now();
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"];
  const GREY = "#c7c7c7", QUERY = "#e81f63";
  // marker symbol of each group of a click map's markers (past scan t-1, t-2 ...)
  const SYMBOLS = ["diamond", "square", "cross", "x", "diamond-open", "square-open"];
  const symbolOf = (g) => SYMBOLS[(Math.max(1, g) - 1) % SYMBOLS.length];
  const CMAPS = Object.keys(S.cmaps);  // name -> 256 "#rrggbb" (matplotlib's tables)
  const LEVELS = 64;  // colour levels of a scalar map: one uniform-colour trace each
  const state = { map: 0, head: 0, cmap: CMAPS[0], size: S.point_size, qpos: null };
  function colorscale(name) {  // plotly colorscale from the same table (for the bar)
    const t = S.cmaps[name], out = [];
    for (let i = 0; i <= 16; i++) out.push([i / 16, t[Math.round(i / 16 * 255)]]);
    return out;
  }
  function levelColor(name, b) { return S.cmaps[name][Math.round(b / (LEVELS - 1) * 255)]; }
  const $ = (id) => document.getElementById(id);
  const plot = $("plot"), bars = $("bars");
  const cache = {};

  function cloudXYZ(ci) {
    const c = S.clouds[ci];
    if (!c.x) {
      const p = c.pos, n = p.length / 3;
      c.x = new Float32Array(n); c.y = new Float32Array(n); c.z = new Float32Array(n);
      for (let i = 0; i < n; i++) { c.x[i] = p[3 * i]; c.y[i] = p[3 * i + 1]; c.z[i] = p[3 * i + 2]; }
      c.n = n;
    }
    return c;
  }
  function nearest(ci, q, rows) {  // index (into rows, or the cloud) nearest to q
    const c = cloudXYZ(ci);
    let best = -1, bd = Infinity;
    const m = rows ? rows.length : c.n;
    for (let r = 0; r < m; r++) {
      const i = rows ? rows[r] : r;
      if (i < 0) continue;
      const d = (c.x[i] - q[0]) ** 2 + (c.y[i] - q[1]) ** 2 + (c.z[i] - q[2]) ** 2;
      if (d < bd) { bd = d; best = r; }
    }
    return best;
  }
  function labelColor(l) { return l < 0 ? GREY : PALETTE[l % PALETTE.length]; }
  function className(l) { return (S.class_names && S.class_names[l]) || String(l); }

  // What the current map gives each point: {vals (Float32Array, NaN = none)} or
  // {key(i) -> group, color(group) -> "#rrggbb"} (labels, RGB)
  function evaluate(m) {
    const c = cloudXYZ(m.cloud), n = c.n, h = Math.min(state.head, (m.values ? m.values.shape[0] : (m.table ? m.table.w.shape[0] : 1)) - 1);
    if (m.kind === "scalar") return { vals: m.values.subarray(h * n, (h + 1) * n) };
    if (m.kind === "rgb") {  // 8 levels per channel
      const q = (v) => Math.round(v / 255 * 7);
      const hex = (l) => Math.round(l / 7 * 255).toString(16).padStart(2, "0");
      return { key: (i) => q(m.rgb[3 * i]) * 64 + q(m.rgb[3 * i + 1]) * 8 + q(m.rgb[3 * i + 2]),
        color: (k) => "#" + hex(k >> 6) + hex((k >> 3) & 7) + hex(k & 7),
        legend: [["x", "#ff0000"], ["y", "#00ff00"], ["z", "#0000ff"]] };
    }
    if (m.kind === "labels") {
      if (!cache["lab" + m.id]) {
        const seen = new Set();
        for (let i = 0; i < n; i++) seen.add(m.labels[i]);
        cache["lab" + m.id] = [...seen].sort((p, q) => p - q).map((l) => [className(l), labelColor(l)]);
      }
      return { key: (i) => m.labels[i], color: labelColor, legend: cache["lab" + m.id] };
    }
    if (m.kind === "click") {
      const t = m.table, K = t.k, R = t.rows.length;
      const qi = nearest(m.cloud, state.qpos);
      let r = t.rows.indexOf(qi);
      if (r < 0) r = nearest(m.cloud, [c.x[qi], c.y[qi], c.z[qi]], t.rows);
      const w = t.w.subarray(h * R * K, (h + 1) * R * K);
      const vals = new Float32Array(n).fill(NaN);
      const markers = [];
      if (t.assign) {
        for (let i = 0; i < n; i++) vals[i] = w[r * K + t.assign[i]] / 65535;
        const M = t.centres.length / 3;
        for (let j = 0; j < M; j++) markers.push([t.centres[3 * j], t.centres[3 * j + 1], t.centres[3 * j + 2], w[r * K + j] / 65535]);
      } else if (t.mpos) {  // points outside the cloud (past scans): markers only
        for (let k = 0; k < K; k++) {
          const o = 3 * (r * K + k), x = t.mpos[o];
          if (x !== x) continue;  // masked
          markers.push([x, t.mpos[o + 1], t.mpos[o + 2], w[r * K + k] / 65535, symbolOf(t.mscan[k]), t.mscan[k]]);
        }
      } else {
        for (let k = 0; k < K; k++) {
          const j = t.idx[r * K + k];
          if (j < 0) continue;
          vals[j] = (isNaN(vals[j]) ? 0 : vals[j]) + w[r * K + k] / 65535;
        }
      }
      const qr = t.rows[r];
      let legend = [["query (ring)", QUERY]].concat(t.assign
        ? [["token centres: diamonds, by weight", "#ffffff"]] : [["not weighted by the query", GREY]]);
      let top;
      if (t.mpos) {
        const scans = [...new Set(Array.from(t.mscan))].sort((a, b) => a - b);
        legend = [["query (ring)", QUERY], ["current scan (grey)", GREY]].concat(
          scans.map((g) => ["scan t-" + g + ": " + symbolOf(g) + ", by weight", "#ffffff"]));
        top = Math.max(1e-9, ...markers.map((p) => p[3]));
      }
      return { vals, markers, query: [c.x[qr], c.y[qr], c.z[qr]], row: qr, legend,
        range: t.mpos ? [0, top] : undefined };
    }
    return { vals: new Float32Array(n).fill(NaN) };
  }

  function range(m, vals) {
    let lo = m.vmin, hi = m.vmax;
    if (lo === null || lo === undefined || hi === null || hi === undefined) {
      let a = Infinity, b = -Infinity;
      for (let i = 0; i < vals.length; i++) { const v = vals[i]; if (v === v) { if (v < a) a = v; if (v > b) b = v; } }
      if (a === Infinity) { a = 0; b = 1; }
      if (lo === null || lo === undefined) lo = a;
      if (hi === null || hi === undefined) hi = b;
    }
    if (hi <= lo) { lo -= 0.5; hi += 0.5; }
    return [lo, hi];
  }

  // Plotly colours points one by one when given a colour per point (seconds for
  // 100k points); so points are grouped into traces of one colour each: the
  // 64 levels of a scalar map, the classes of a label map, the RGB of an axis
  // map (8 levels per channel). state.index[t] lists the points of trace t.
  function traces(m, ev) {
    const c = cloudXYZ(m.cloud), n = c.n, size = state.size;
    const base = { type: "scatter3d", mode: "markers", hoverinfo: "none", showlegend: false };
    const groups = new Map(), grey = [];
    let lo = 0, hi = 1, big = false;
    if (ev.vals) {
      [lo, hi] = ev.range || range(m, ev.vals);
      big = m.kind === "click" && !m.table.assign;
      const f = (LEVELS - 1) / (hi - lo);
      for (let i = 0; i < n; i++) {
        const v = ev.vals[i];
        if (v !== v) { grey.push(i); continue; }
        const key = levelColor(state.cmap, Math.min(LEVELS - 1, Math.max(0, Math.round((v - lo) * f))));
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(i);
      }
    } else {
      for (let i = 0; i < n; i++) {
        const key = ev.key(i);
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(i);
      }
    }
    const pick = (arr, idx) => { const o = new Float32Array(idx.length); for (let i = 0; i < idx.length; i++) o[i] = arr[idx[i]]; return o; };
    const out = [], index = [];
    const add = (idx, color, sz) => {
      out.push(Object.assign({}, base, { x: pick(c.x, idx), y: pick(c.y, idx), z: pick(c.z, idx), marker: { size: sz, color, opacity: 1, symbol: "square" } }));
      index.push(idx);
    };
    add(grey, GREY, size * 0.7);
    for (const [color, idx] of groups) add(idx, ev.vals ? color : ev.color(color), big ? size * 2 : size);
    state.index = index;
    if (ev.vals) {  // the colour bar, on an invisible point
      out.push(Object.assign({}, base, { x: [c.x[0]], y: [c.y[0]], z: [c.z[0]], marker: { size: 0.1, opacity: 0,
        color: [lo], colorscale: colorscale(state.cmap), cmin: lo, cmax: hi, showscale: true,
        colorbar: { title: { text: m.value_label || "weight", side: "right" }, thickness: 14, len: 0.8 } } }));
    }
    if (ev.markers && ev.markers.length) {  // token centres or past points, coloured by weight
      const top = Math.max(1e-9, ...ev.markers.map((p) => p[3]));
      out.push(Object.assign({}, base, { x: ev.markers.map((p) => p[0]), y: ev.markers.map((p) => p[1]), z: ev.markers.map((p) => p[2]),
        marker: { size: size * 3, symbol: ev.markers.map((p) => p[4] || "diamond"), line: { color: "#1e1e1e", width: 2 },
          color: ev.markers.map((p) => levelColor(state.cmap, Math.round(p[3] / top * (LEVELS - 1)))) } }));
    }
    // the query: an open ring (it never hides the colour of the point it marks),
    // on the maps that depend on it and after a click
    const q = ev.query || state.qpos;
    if (m.kind === "click" || state.clicked) {
      out.push(Object.assign({}, base, { x: [q[0]], y: [q[1]], z: [q[2]],
        marker: { size: Math.max(10, size * 2.2), color: QUERY, symbol: "circle-open", line: { color: QUERY, width: 4 } } }));
    }
    return out;
  }

  const layout = { margin: { l: 0, r: 0, t: 30, b: 0 }, paper_bgcolor: "white", uirevision: "keep",
    scene: { aspectmode: "data", xaxis: { visible: false }, yaxis: { visible: false }, zaxis: { visible: false }, bgcolor: "white" } };

  function info(m, ev) {
    const c0 = cloudXYZ(0), qi = nearest(0, state.qpos);
    const lines = ["query: point " + qi + " of the input (" + [c0.x[qi], c0.y[qi], c0.z[qi]].map((v) => v.toFixed(3)).join(", ") + ")"];
    for (const o of S.maps) if (o.kind === "labels") lines.push(o.name + ": " + className(o.labels[qi]));
    const c = cloudXYZ(m.cloud), i = ev.row !== undefined ? ev.row : nearest(m.cloud, state.qpos);
    if (m.kind === "scalar" && ev.vals) lines.push(m.name + " here: " + ev.vals[i].toFixed(4));
    if (m.kind === "click" && m.table.mpos) {
      const top = ev.markers.slice().sort((a, b) => b[3] - a[3]);
      lines.push(top.length + " past points weighted; the largest:");
      for (const p of top.slice(0, 8)) lines.push("  scan t-" + p[5] + " (" + p.slice(0, 3).map((v) => v.toFixed(2)).join(", ") + "): " + p[3].toFixed(4));
    } else if (m.kind === "click") {
      let cnt = 0, top = [];
      for (let j = 0; j < c.n; j++) if (ev.vals[j] === ev.vals[j]) { cnt++; top.push([ev.vals[j], j]); }
      top.sort((a, b) => b[0] - a[0]);
      lines.push(cnt + " points weighted; the largest:");
      for (const [v, j] of top.slice(0, 8)) lines.push("  point " + j + ": " + v.toFixed(4));
    }
    if (S.clouds[m.cloud].total !== c.n || m.cloud !== 0) lines.push("layer points: " + c.n + (S.clouds[m.cloud].total !== c.n ? " shown of " + S.clouds[m.cloud].total : ""));
    $("info").textContent = lines.join("\n");
    $("legend").innerHTML = (ev.legend || []).map(([name, col]) => '<div><span class="sw" style="background:' + col + '"></span>' + name.replace(/</g, "&lt;") + "</div>").join("");
  }

  let first = true;
  function render() {  // draw the current state; counts finished draws in pointsamViewer.drawn
    return Promise.resolve(draw()).then(() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok))))
      .then(() => { window.pointsamViewer.drawn += 1; });
  }
  function draw() {
    const m = S.maps[state.map];
    writeHash();
    const heads = m.values ? m.values.shape[0] : (m.table ? m.table.w.shape[0] : 1);
    $("headbox").style.display = heads > 1 ? "" : "none";
    $("head").innerHTML = "";
    for (let h = 0; h < heads; h++) $("head").add(new Option(h === 0 ? "mean of " + (heads - 1) + " heads" : "head " + (h - 1), h));
    state.head = Math.min(state.head, heads - 1);
    $("head").value = state.head;
    if (m.kind === "bars") {
      plot.style.display = "none"; bars.style.display = "block";
      const v = Array.from(m.bars);
      const p = Plotly.react(bars, [{ type: "bar", x: v.map((_, i) => i), y: v,
        marker: { color: v.map((x) => levelColor(state.cmap, Math.min(LEVELS - 1, Math.max(0, Math.round(x * (LEVELS - 1)))))) } },
        { type: "scatter", mode: "markers", x: [0], y: [0], hoverinfo: "none", showlegend: false,  // the colour bar
          marker: { size: 0.1, opacity: 0, color: [0], colorscale: colorscale(state.cmap), cmin: 0, cmax: 1, showscale: true, colorbar: { title: { text: m.value_label, side: "right" } } } }],
        { title: { text: m.layer + ": " + m.name }, margin: { t: 50 }, xaxis: { title: { text: "channel" } }, yaxis: { title: { text: m.value_label }, range: [0, 1] } },
        { displaylogo: false });
      $("info").textContent = m.bars.length + " channels; mean " + (v.reduce((a, b) => a + b, 0) / v.length).toFixed(3);
      $("legend").innerHTML = "";
      return p;
    }
    plot.style.display = "block"; bars.style.display = "none";
    const ev = evaluate(m);
    const lay = Object.assign({}, layout, { title: { text: m.layer + ": " + m.name, font: { size: 14 } } });
    const p = Plotly.react(plot, traces(m, ev), lay, { displaylogo: false, responsive: true });
    info(m, ev);
    if (first) { first = false; bindClick(); }
    return p;
  }

  function bindClick() {
    plot.on("plotly_click", (e) => {
      if (!e || !e.points || !e.points.length) return;
      const pt = e.points[0];
      if (pt.curveNumber >= state.index.length) return;  // colour bar, tokens, query
      const m = S.maps[state.map], c = cloudXYZ(m.cloud);
      const i = state.index[pt.curveNumber][pt.pointNumber];
      state.qpos = [c.x[i], c.y[i], c.z[i]];
      state.clicked = true;
      setTimeout(render, 0);  // not inside plotly's own event handling
    });
  }

  function readHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    if (h.has("map")) { const k = h.get("map"); const id = /^\d+$/.test(k) ? +k : S.maps.findIndex((m) => m.layer + ": " + m.name === k); if (id >= 0 && id < S.maps.length) state.map = id; }
    if (h.has("head")) state.head = Math.max(0, parseInt(h.get("head"), 10) || 0);
    if (h.has("cmap") && CMAPS.includes(h.get("cmap"))) state.cmap = h.get("cmap");
    if (h.has("size")) state.size = Math.max(0.5, parseFloat(h.get("size")) || state.size);
    if (h.has("query")) { const c = cloudXYZ(0), q = parseInt(h.get("query"), 10); if (q >= 0 && q < c.n) state.qpos = [c.x[q], c.y[q], c.z[q]]; }
  }
  function writeHash() {
    const c = cloudXYZ(0), q = nearest(0, state.qpos);
    const s = "map=" + state.map + "&head=" + state.head + "&cmap=" + state.cmap + "&size=" + state.size + "&query=" + q;
    if (location.hash.slice(1) !== s) history.replaceState(null, "", "#" + s);
  }

  // controls
  const c0 = cloudXYZ(0);
  state.qpos = [c0.x[S.query], c0.y[S.query], c0.z[S.query]];
  state.map = S.default_map;
  readHash();
  document.title = S.title;
  $("title").textContent = S.title;
  $("stats").textContent = S.clouds[0].total.toLocaleString("en") + " points" + (S.clouds[0].total !== c0.n ? " (" + c0.n.toLocaleString("en") + " shown)" : "") + ", " + S.maps.length + " maps";
  const groups = {};
  for (const m of S.maps) {
    if (!groups[m.layer]) { groups[m.layer] = document.createElement("optgroup"); groups[m.layer].label = m.layer; $("map").appendChild(groups[m.layer]); }
    groups[m.layer].appendChild(new Option(m.name, m.id));
  }
  for (const c of CMAPS) $("cmap").add(new Option(c, c));
  $("notes").innerHTML = S.notes.map((t) => "<div>" + t.replace(/</g, "&lt;") + "</div>").join("");
  const sync = () => { $("map").value = state.map; $("cmap").value = state.cmap; $("size").value = state.size; $("sizeval").textContent = state.size; };
  sync();
  $("map").onchange = () => { state.map = +$("map").value; render(); };
  $("head").onchange = () => { state.head = +$("head").value; render(); };
  $("cmap").onchange = () => { state.cmap = $("cmap").value; render(); };
  $("size").oninput = () => { state.size = +$("size").value; $("sizeval").textContent = state.size; render(); };
  window.addEventListener("hashchange", () => { readHash(); sync(); render(); });
  window.pointsamViewer = { scene: S, state, render, ready: false, drawn: 0 };
  Promise.resolve(S.maps.length ? render() : null).then(() => {
    window.pointsamViewer.ready = true;
    window.pointsamViewer.firstPaintMs = performance.now();  // since navigation start
    window.pointsamViewer.viewerMs = performance.now() - T0;  // decode + first draw
    window.pointsamViewer.timing = { scriptStartMs: T0, sceneParsedMs: T_PARSED };
    document.documentElement.dataset.ready = "1";
  });
})();
