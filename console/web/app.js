// The console page: it talks only to the operator's API on this origin.
"use strict";
(function () {
  const L = window.CBLogic;
  const $ = s => document.querySelector(s);
  const SVGNS = "http://www.w3.org/2000/svg";
  const POLL_MS = 2000;

  const state = {
    cladnets: [], current: "", ov: null, sort: { key: "host", desc: false }, open: new Set(),
    runs: [], run: null, barHost: "", lastOK: 0, busy: false,
  };

  // el builds an element; attributes starting with "on" are listeners,
  // children are nodes or text (never parsed as HTML).
  function el(tag, attrs, ...kids) { return build(document.createElement(tag), attrs, kids); }
  function sv(tag, attrs, ...kids) { return build(document.createElementNS(SVGNS, tag), attrs, kids); }
  function build(n, attrs, kids) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
      else if (k === "text") n.textContent = v;
      else n.setAttribute(k, v === true ? "" : v);
    }
    for (const k of kids.flat()) if (k !== null && k !== undefined) n.append(k instanceof Node ? k : String(k));
    return n;
  }

  // A bearer token given in the page stays in this tab (sessionStorage).
  const TOKEN_KEY = "cbnode-operator-token";
  function authHeaders(h) {
    const tok = sessionStorage.getItem(TOKEN_KEY);
    if (tok) h.Authorization = "Bearer " + tok;
    return h;
  }

  async function call(method, path, body) {
    const opt = { method, headers: authHeaders({ Accept: "application/json" }) };
    if (body !== undefined) { opt.headers["Content-Type"] = "application/json"; opt.body = JSON.stringify(body); }
    const r = await fetch(path, opt);
    $("#login").hidden = r.status !== 401;
    const txt = await r.text();
    let j = null;
    try { j = txt ? JSON.parse(txt) : null; } catch (e) { /* not JSON */ }
    if (!r.ok) throw new Error((j && j.error) || `${method} ${path}: HTTP ${r.status}`);
    return j;
  }

  let noticeTimer = 0;
  function notice(msg, error) {
    const n = $("#notice");
    n.textContent = msg; n.hidden = false; n.className = error ? "error" : "";
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { n.hidden = true; }, error ? 12000 : 5000);
  }

  // confirmed asks in a modal dialog; it resolves true only on Confirm.
  function confirmed(text) {
    const d = $("#confirm");
    $("#confirm-text").textContent = text;
    d.showModal();
    return new Promise(res => {
      const done = v => () => { d.close(); $("#confirm-ok").onclick = $("#confirm-cancel").onclick = null; res(v); };
      $("#confirm-ok").onclick = done(true);
      $("#confirm-cancel").onclick = done(false);
      d.oncancel = done(false);
    });
  }

  const cid = () => encodeURIComponent(state.current);

  // ---- CLADNets ----
  async function loadCladnets() {
    const j = await call("GET", "/v1/cladnet");
    state.cladnets = j.cladnetSpecifications || [];
    const want = decodeURIComponent(location.hash.slice(1));
    if (!state.cladnets.some(c => c.name === state.current)) {
      const pick = state.cladnets.find(c => c.name === want || c.cladnetId === want) || state.cladnets[0];
      state.current = pick ? pick.name : "";
      state.ov = null; state.run = null; state.runs = [];
      if (state.current) loadRuns();
    }
    renderCladnets();
  }

  function renderCladnets() {
    const sel = $("#cladnet-select");
    sel.replaceChildren(...state.cladnets.map(c => el("option", { value: c.name, selected: c.name === state.current, text: c.name })));
    $("#cladnet-table tbody").replaceChildren(...(state.cladnets.length ? state.cladnets.map(c => el("tr", { "data-cladnet": c.name, class: c.name === state.current ? "selected" : "" },
      el("td", {}, el("strong", { text: c.name }), el("br"), el("span", { class: "mono", text: c.cladnetId })),
      el("td", { class: "mono", text: c.ipv4AddressSpace }),
      el("td", { text: c.ruleType }),
      el("td", { class: "wide", text: c.description }),
      el("td", {}, el("button", { type: "button", "aria-label": "Show CLADNet " + c.name, onclick: () => select(c.name), text: "show" })))) :
      [el("tr", {}, el("td", { colspan: 5, text: "No CLADNet yet: create one below." }))]));
    for (const id of ["overview", "members", "rtt", "cost", "events"]) $("#" + id).hidden = !state.current;
  }

  function select(name) {
    state.current = name; state.ov = null; state.run = null; state.runs = []; state.open.clear(); state.barHost = "";
    location.hash = encodeURIComponent(name);
    renderCladnets(); loadRuns(); refresh();
  }

  async function recommend() {
    const subnets = $("#create-subnets").value.split(/[\s,]+/).filter(Boolean);
    const hosts = +$("#create-hosts").value || 0;
    try {
      const j = await call("POST", "/v1/cladnet/availableIPv4AddressSpaces", { ipv4CIDRs: subnets.concat(state.cladnets.map(c => c.ipv4AddressSpace)), hosts });
      $("#create-cidr").value = j.recommendedIpv4PrivateAddressSpace;
      $("#recommendation").textContent = `recommended ${j.recommendedIpv4PrivateAddressSpace} (free of ${subnets.length} subnet(s) and the other CLADNets)`;
    } catch (e) { notice(e.message, true); }
  }

  async function create(ev) {
    ev.preventDefault();
    const body = {
      name: $("#create-name").value.trim(), ipv4AddressSpace: $("#create-cidr").value.trim(),
      ruleType: $("#create-rule").value, description: $("#create-desc").value,
    };
    if (!body.ipv4AddressSpace) {
      body.ipv4Cidrs = $("#create-subnets").value.split(/[\s,]+/).filter(Boolean);
      body.hosts = +$("#create-hosts").value || 0;
    }
    try {
      const c = await call("POST", "/v1/cladnet", body);
      notice(`created CLADNet ${c.name} (${c.cladnetId}) with ${c.ipv4AddressSpace}`);
      $("#create-form").reset(); $("#recommendation").textContent = ""; $("#create").open = false;
      await loadCladnets(); select(c.name);
    } catch (e) { notice(e.message, true); }
  }

  // ---- the selected CLADNet ----
  async function refresh() {
    if (!state.current || state.busy) return;
    state.busy = true;
    try {
      const name = state.current;
      const paths = [...state.open].map(encodeURIComponent).join(",");
      const ov = await call("GET", `/v1/cladnet/${cid()}/overview` + (paths ? "?paths=" + paths : ""));
      if (name !== state.current) return;
      state.ov = ov; state.lastOK = Date.now();
      render();
      $("#live").textContent = "live · updated " + new Date().toLocaleTimeString();
      $("#live").className = "";
    } catch (e) {
      $("#live").textContent = "not updated since " + (state.lastOK ? new Date(state.lastOK).toLocaleTimeString() : "start") + ": " + e.message;
      $("#live").className = "stale";
      if (/not held/.test(e.message)) loadCladnets().catch(() => {});
    } finally { state.busy = false; }
  }

  function render() {
    const ov = state.ov;
    $("#ov-name").textContent = ov.name;
    const spec = state.cladnets.find(c => c.name === ov.name) || {};
    $("#ov-facts").replaceChildren(
      el("span", { class: "mono", text: ov.cladnetId }), " · range ", el("strong", { text: spec.ipv4AddressSpace || "" }),
      " · data plane ", el("strong", { id: "ov-plane", class: ov.dataPlane === "up" ? "" : "relayed", text: ov.dataPlane }),
      ` · rule ${ov.ruleType} (rules v${ov.rulesVersion}) · revocation list v${ov.revocationVersion}`,
      spec.description ? " · " + spec.description : "");
    renderMembers(); renderCost(); renderEvents();
  }

  function cloud(m) { const d = m.details || {}; return [d.providerName, d.regionId, d.availabilityZoneId, d.virtualNetworkId].filter(Boolean).join(" / "); }

  function renderMembers() {
    const ov = state.ov, now = Date.now();
    const all = ov.members;
    const shown = L.sortMembers(L.filterMembers(all, $("#member-filter").value, $("#member-status").value), state.sort.key, state.sort.desc);
    const counts = {};
    for (const m of all) counts[m.status] = (counts[m.status] || 0) + 1;
    $("#member-count").textContent = all.length ? `(${shown.length} of ${all.length}: ` + Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ") + ")" : "";
    for (const th of document.querySelectorAll("#member-table th[data-sort]")) {
      th.setAttribute("aria-sort", th.dataset.sort === state.sort.key ? (state.sort.desc ? "descending" : "ascending") : "none");
    }
    const rows = [];
    for (const m of shown) {
      const gone = m.status === "lost" || m.status === "left" || m.status === "revoked";
      const open = state.open.has(m.hostId);
      rows.push(el("tr", { class: "st-" + m.status, "data-host": m.hostName, "data-status": m.status },
        el("th", { scope: "row" }, m.hostName),
        el("td", { class: "mono", text: m.ip || "–" }),
        el("td", {}, el("span", { class: "badge " + m.status, text: m.status }), gone && m.goneAt ? el("small", { text: " " + L.ago(m.goneAt, now) }) : null),
        el("td", { class: "wide", text: cloud(m) || "–" }),
        el("td", {}, el("button", { type: "button", "aria-expanded": String(open), "aria-label": `Paths of ${m.hostName} to each peer`, onclick: () => { open ? state.open.delete(m.hostId) : state.open.add(m.hostId); renderMembers(); refresh(); } },
          L.pathText(m.pathCounts, gone))),
        el("td", { class: "num", "data-col": "tx", text: L.bytes(m.txBytes) }),
        el("td", { class: "num wide", "data-col": "rx", text: L.bytes(m.rxBytes) }),
        el("td", { class: "wide", title: m.certNotAfter || "", text: L.until(m.certNotAfter, now) }),
        el("td", { title: m.lastSeen || "", text: L.ago(m.lastSeen, now) }),
        el("td", {}, m.status === "revoked" ? "" : el("button", { type: "button", class: "danger", "aria-label": "Revoke " + m.hostName, onclick: () => revoke(m) }, "revoke"))));
      if (open) rows.push(el("tr", { class: "paths" }, el("td", { colspan: 10 }, pathTable(m))));
    }
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 10, text: all.length ? "No member matches the filter." : "No member yet: issue a join token and run 'cbnode join'." })));
    $("#member-table tbody").replaceChildren(...rows);
  }

  function pathTable(m) {
    m.paths = m.paths || [];
    if (!m.paths.length) return el("p", { text: m.pathsError ? "path table unavailable: " + m.pathsError : m.pathsAt ? "loading the path table…" : "no path table yet" });
    return el("table", { "aria-label": `Paths of ${m.hostName}` },
      el("thead", {}, el("tr", {}, ...["peer", "path", "transport", "class", "$/GB", "selected IP", "tx", "rx", "reason"].map(h => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...m.paths.map(p => el("tr", {},
        el("td", { text: p.hostName }), el("td", { class: p.relayed ? "relayed" : "", text: !p.remote ? "none" : p.relayed ? "relayed" : "direct" }),
        el("td", { text: L.transport(p.remote) }), el("td", { text: p.pathClass || "" }), el("td", { class: "num", text: (p.pricePerGb || 0).toFixed(3) }),
        el("td", { class: "mono", text: p.selectedIp || "" }), el("td", { class: "num", text: L.bytes(p.txBytes) }), el("td", { class: "num", text: L.bytes(p.rxBytes) }),
        el("td", { text: p.reason || "" })))),
      m.pathsError ? el("caption", { text: "stale: " + m.pathsError }) : null);
  }

  async function revoke(m) {
    if (!await confirmed(`Revoke ${m.hostName} (${m.hostId})? Its connections are closed within seconds, its address is freed, and its key never joins again.`)) return;
    try {
      const doc = await call("POST", `/v1/cladnet/${cid()}/revocation`, { peerId: m.hostId, reason: "revoked from the console" });
      notice(`revoked ${m.hostName}: revocation list version ${doc.version}`);
      refresh();
    } catch (e) { notice(e.message, true); }
  }

  async function command(cmd) {
    if (!await confirmed(`Send ${cmd} to every member of ${state.current}? ` + (cmd === "DOWN" ? "Overlay traffic stops on every member (membership stays)." : "Overlay traffic resumes."))) return;
    try {
      const r = await call("POST", `/v1/control/cladnet/${cid()}/command/${cmd}`);
      notice(`${cmd}: ${r.message} (version ${r.version}, ${r.members} members)`);
      refresh();
    } catch (e) { notice(e.message, true); }
  }

  function edit() {
    const spec = state.cladnets.find(c => c.name === state.current) || {};
    $("#edit-desc").value = spec.description || ""; $("#edit-rule").value = spec.ruleType || "basic";
    $("#edit-dialog").showModal();
  }
  async function saveEdit() {
    const body = { description: $("#edit-desc").value, ruleType: $("#edit-rule").value };
    $("#edit-dialog").close();
    if (!await confirmed(`Update ${state.current}: rule type ${body.ruleType}, description "${body.description}"? A rule-type change is signed and spread to every member.`)) return;
    try { await call("PUT", `/v1/cladnet/${cid()}`, body); notice("updated " + state.current); await loadCladnets(); refresh(); } catch (e) { notice(e.message, true); }
  }

  async function rules() {
    try {
      const r = await call("GET", `/v1/cladnet/${cid()}/rules`);
      $("#rules-text").value = JSON.stringify({ ruleType: r.ruleType, prices: r.prices }, null, 2);
      $("#rules-dialog").showModal();
    } catch (e) { notice(e.message, true); }
  }
  async function pushRules() {
    let doc;
    try { doc = JSON.parse($("#rules-text").value); } catch (e) { notice("rules: not JSON: " + e.message, true); return; }
    $("#rules-dialog").close();
    if (!await confirmed(`Sign and push these rules (${doc.ruleType}) to every member of ${state.current}?`)) return;
    try { const r = await call("PUT", `/v1/cladnet/${cid()}/rules`, doc); notice(`rules version ${r.version} signed and spread`); refresh(); } catch (e) { notice(e.message, true); }
  }

  function token() {
    for (const id of ["#token-host", "#token-ttl", "#token-groups", "#token-peer"]) $(id).value = "";
    $("#token-value").value = ""; $("#token-out").hidden = true; $("#token-copy").hidden = true; $("#token-issue").hidden = false;
    $("#token-dialog").showModal();
  }
  async function issue() {
    const body = { hostName: $("#token-host").value.trim(), ttl: $("#token-ttl").value.trim(), groups: $("#token-groups").value.split(/[\s,]+/).filter(Boolean), peerId: $("#token-peer").value.trim() };
    try {
      const t = await call("POST", `/v1/cladnet/${cid()}/token`, body);
      $("#token-value").value = t.token; $("#token-out").hidden = false; $("#token-copy").hidden = false; $("#token-issue").hidden = true;
      $("#token-title").textContent = `Token for ${t.hostName} (until ${new Date(t.notAfter).toLocaleString()})`;
    } catch (e) { notice(e.message, true); }
  }
  async function copyToken() {
    const t = $("#token-value");
    t.select();
    try { await navigator.clipboard.writeText(t.value); notice("token copied"); } catch (e) { document.execCommand && document.execCommand("copy"); notice("token selected: copy it with Ctrl+C"); }
  }
  function closeToken() { $("#token-value").value = ""; $("#token-dialog").close(); $("#token-title").textContent = "Issue a join token"; }

  async function dissolve() {
    if (!await confirmed(`Dissolve ${state.current}? Every member leaves and removes its device; the owner key is archived on the operator. This cannot be undone from here.`)) return;
    try {
      const r = await call("DELETE", `/v1/cladnet/${cid()}`);
      notice(r.message);
      state.current = ""; location.hash = ""; await loadCladnets(); if (state.current) select(state.current);
    } catch (e) { notice(e.message, true); }
  }

  // ---- RTT ----
  async function loadRuns(pick) {
    if (!state.current) return;
    try {
      const j = await call("GET", `/v1/test/cladnet/${cid()}`);
      state.runs = j.runs || [];
      $("#run-select").replaceChildren(...(state.runs.length ? state.runs.map(r => el("option", { value: r.runId, text: `${new Date(r.startedAt).toLocaleString()} · ${r.measuredPairs}/${r.pairs} pairs` })) : [el("option", { value: "", text: "no test yet" })]));
      const id = pick || (state.runs[0] && state.runs[0].runId);
      if (id) { $("#run-select").value = id; await showRun(id); } else { state.run = null; renderRTT(); }
    } catch (e) { notice(e.message, true); }
  }

  async function showRun(id) {
    try { state.run = await call("GET", `/v1/test/cladnet/${cid()}/run/${encodeURIComponent(id)}`); renderRTT(); } catch (e) { notice(e.message, true); }
  }

  async function runTest() {
    const b = $("#run-test");
    b.disabled = true; b.textContent = "testing…";
    $("#run-info").textContent = "every member measures every other…";
    try {
      const r = await call("POST", `/v1/test/cladnet/${cid()}/type/CONNECTIVITY`, { testSpec: { trialCount: +$("#trials").value || 3 } });
      notice("test " + r.runId + ": " + r.message, !r.isSucceeded);
      await loadRuns(r.runId);
    } catch (e) { notice(e.message, true); $("#run-info").textContent = ""; }
    finally { b.disabled = false; b.textContent = "Run a connectivity test"; }
  }

  const pairText = p => `${p.sourceName} → ${p.destinationName}\n` + (p.measured ?
    `min ${L.ms(p.minRttMs)} · avg ${L.ms(p.avgRttMs)} · max ${L.ms(p.maxRttMs)}\nloss ${p.lossPercent}% (${p.packetsReceive}/${p.packetsSent})` + (p.path && p.path.relayed ? "\nrelayed" : "") :
    "not measured" + (p.error ? ": " + p.error : ""));

  function tip(ev, text) {
    const t = $("#tooltip");
    t.textContent = text; t.hidden = false;
    const x = Math.min(ev.clientX + 12, window.innerWidth - t.offsetWidth - 4), y = Math.min(ev.clientY + 12, window.innerHeight - t.offsetHeight - 4);
    t.style.left = x + "px"; t.style.top = y + "px";
  }
  const untip = () => { $("#tooltip").hidden = true; };

  function renderRTT() {
    const run = state.run, hm = $("#heatmap");
    if (!run) {
      hm.replaceChildren(); $("#legend").replaceChildren(); $("#barplot").replaceChildren();
      $("#run-info").textContent = "no test run yet: press the button"; $("#csv").removeAttribute("href");
      renderBarHosts(); return;
    }
    $("#csv").href = `/v1/test/cladnet/${cid()}/run/${encodeURIComponent(run.runId)}?format=csv`;
    $("#csv").setAttribute("download", run.runId + ".csv");
    $("#run-info").textContent = `${run.message} · ${run.trialCount} trials every ${run.interval}`;
    const { hosts, cells } = L.matrix(run);
    const vals = cells.flat().filter(c => c && c.measured).map(c => c.avgRttMs);
    const [lo, hi] = L.domain(vals);
    const n = hosts.length, lab = 70, size = Math.max(18, Math.min(40, Math.floor(400 / Math.max(1, n))));
    const W = lab + n * size + 4;
    hm.setAttribute("viewBox", `0 0 ${W} ${W}`);
    const kids = [];
    hosts.forEach((h, i) => {
      kids.push(sv("text", { x: lab - 4, y: lab + i * size + size / 2 + 4, "text-anchor": "end" }, h.hostName));
      kids.push(sv("text", { x: lab + i * size + size / 2, y: lab - 6, "text-anchor": "start", transform: `rotate(-45 ${lab + i * size + size / 2} ${lab - 6})` }, h.hostName));
    });
    cells.forEach((row, i) => row.forEach((c, j) => {
      if (i === j) { kids.push(sv("rect", { x: lab + j * size, y: lab + i * size, width: size, height: size, fill: "#f1f3f5", class: "diag" })); return; }
      const v = c && c.measured ? c.avgRttMs : null;
      const text = c ? pairText(c) : `${hosts[i].hostName} → ${hosts[j].hostName}\nno data`;
      kids.push(sv("rect", {
        x: lab + j * size, y: lab + i * size, width: size, height: size, fill: L.color(v, lo, hi), class: "cell", tabindex: n <= 20 ? 0 : null, role: "img",
        "aria-label": text.replace(/\n/g, ", "), "data-src": hosts[i].hostName, "data-dst": hosts[j].hostName, "data-avg": v === null ? "" : String(v),
        "data-min": c && c.measured ? String(c.minRttMs) : "", "data-max": c && c.measured ? String(c.maxRttMs) : "", "data-loss": c ? String(c.lossPercent) : "",
        onmousemove: ev => tip(ev, text), onmouseleave: untip, onfocus: ev => { const r = ev.target.getBoundingClientRect(); tip({ clientX: r.right, clientY: r.bottom }, text); }, onblur: untip,
        onclick: () => { state.barHost = hosts[i].hostId; renderBarHosts(); renderBar(); },
      }, sv("title", {}, text)));
    }));
    hm.replaceChildren(...kids);
    const stops = L.legend(lo, hi, 6), lg = $("#legend"), w = 480 / stops.length;
    lg.setAttribute("viewBox", "0 0 480 34");
    lg.replaceChildren(...stops.flatMap((s, i) => [sv("rect", { x: i * w, y: 0, width: w, height: 14, fill: s.color }), sv("text", { x: i * w + 2, y: 28 }, L.ms(s.value))]));
    lg.setAttribute("aria-label", `Colour legend: green ${L.ms(lo)} to red ${L.ms(hi)}; grey not measured`);
    renderBarHosts(); renderBar();
  }

  function renderBarHosts() {
    const hosts = state.run ? state.run.hosts : [];
    if (!hosts.some(h => h.hostId === state.barHost)) state.barHost = hosts.length ? hosts[0].hostId : "";
    const sel = $("#bar-host");
    if (sel.options.length !== hosts.length || [...sel.options].some((o, i) => o.value !== hosts[i].hostId)) {
      sel.replaceChildren(...hosts.map(h => el("option", { value: h.hostId, text: h.hostName })));
    }
    sel.value = state.barHost;
  }

  function renderBar() {
    const run = state.run, bp = $("#barplot");
    if (!run || !state.barHost) { bp.replaceChildren(); return; }
    const { hosts, cells } = L.matrix(run);
    const i = hosts.findIndex(h => h.hostId === state.barHost);
    const others = hosts.map((h, j) => ({ h, c: cells[i][j] })).filter((_, j) => j !== i);
    const vals = others.map(o => o.c && o.c.measured ? o.c.avgRttMs : null);
    const [lo, hi] = L.domain(cells.flat().filter(c => c && c.measured).map(c => c.avgRttMs));
    const C = 160, r0 = 36, r1 = 112, bs = L.bars(vals, r0, r1);
    bp.setAttribute("viewBox", "-60 0 440 320");
    const kids = [sv("circle", { cx: C, cy: C, r: r0, fill: "none", stroke: "#d0d5dc" }), sv("text", { x: C, y: C + 4, "text-anchor": "middle" }, hosts[i].hostName)];
    bs.forEach((b, k) => {
      const o = others[k], a0 = b.angle - b.width / 2, a1 = b.angle + b.width / 2;
      const text = o.c ? pairText(o.c) : `${hosts[i].hostName} → ${o.h.hostName}\nno data`;
      kids.push(sv("path", { d: L.arc(C, C, r0, Math.max(b.r1, r0 + 1), a0, a1), fill: L.color(b.value, lo, hi), class: "bar", "data-dst": o.h.hostName, role: "img", "aria-label": text.replace(/\n/g, ", "),
        onmousemove: ev => tip(ev, text), onmouseleave: untip }, sv("title", {}, text)));
      const lr = r1 + 12, x = C + lr * Math.sin(b.angle), y = C - lr * Math.cos(b.angle);
      kids.push(sv("text", { x: x.toFixed(1), y: (y + 4).toFixed(1), "text-anchor": Math.abs(Math.sin(b.angle)) < 0.3 ? "middle" : Math.sin(b.angle) > 0 ? "start" : "end" }, `${o.h.hostName} ${b.value === null ? "–" : L.ms(b.value)}`));
    });
    bp.replaceChildren(...kids);
  }

  // ---- cost ----
  function renderCost() {
    const c = state.ov.cost, t = c.total;
    $("#cost-total").replaceChildren("Spent ", el("strong", { text: L.usd(t.spentUsd) }), ` for ${L.bytes(t.bytes)}; the basic rule would have cost `,
      el("strong", { text: L.usd(t.basicUsd) }), " — saved ", el("strong", { id: "cost-saved", text: L.usd(t.savedUsd) }), ` (rule ${state.ov.ruleType}).`);
    const h = c.history.map(s => ({ t: Date.parse(s.at), spent: s.spentUsd, basic: s.basicUsd }));
    const vmax = Math.max(1e-9, ...h.map(s => Math.max(s.spent, s.basic)));
    const W = 600, H = 130, ch = $("#cost-chart");
    ch.setAttribute("viewBox", `0 0 ${W + 70} ${H + 24}`);
    ch.setAttribute("preserveAspectRatio", "none");
    const pts = k => L.lineChart(h.map(s => ({ t: s.t, v: s[k] })), W, H, vmax);
    ch.replaceChildren(
      sv("line", { x1: 0, y1: H, x2: W, y2: H, stroke: "#b8c0cc" }),
      sv("text", { x: W + 4, y: 10 }, L.usd(vmax)), sv("text", { x: W + 4, y: H }, "$0"),
      h.length ? sv("text", { x: 0, y: H + 16 }, new Date(h[0].t).toLocaleTimeString()) : null,
      h.length ? sv("text", { x: W, y: H + 16, "text-anchor": "end" }, new Date(h[h.length - 1].t).toLocaleTimeString()) : null,
      sv("polyline", { points: pts("basic"), fill: "none", stroke: "#c2410c", "stroke-width": 2 }),
      sv("polyline", { points: pts("spent"), fill: "none", stroke: "#1f5fbf", "stroke-width": 2 }));
    const usage = (u, ...first) => el("tr", {}, ...first.map(f => el("td", { text: f })), el("td", { class: "num", text: L.bytes(u.bytes) }),
      el("td", { class: "num", text: L.usd(u.spentUsd) }), el("td", { class: "num", text: L.usd(u.basicUsd) }), el("td", { class: "num", text: L.usd(u.savedUsd) }));
    const classes = Object.entries(c.classes).sort((a, b) => b[1].bytes - a[1].bytes);
    $("#cost-classes tbody").replaceChildren(...(classes.length ? classes.map(([k, u]) => usage(u, k)) : [el("tr", {}, el("td", { colspan: 5, text: "no metered traffic yet" }))]));
    const pairs = c.pairs.slice().sort((a, b) => b.bytes - a.bytes).slice(0, 100);
    $("#cost-pairs tbody").replaceChildren(...(pairs.length ? pairs.map(p => usage(p, p.from, p.to, p.pathClass)) : [el("tr", {}, el("td", { colspan: 7, text: "no metered traffic yet" }))]));
    const pr = state.ov.prices || {}, rows = [["default", pr.default || {}], ...Object.entries(pr.providers || {})];
    const cls = [...new Set(rows.flatMap(([, p]) => Object.keys(p)))];
    $("#prices thead").replaceChildren(el("tr", {}, el("th", { scope: "col", text: "provider" }), ...cls.map(k => el("th", { scope: "col", text: k }))));
    $("#prices tbody").replaceChildren(...rows.map(([name, p]) => el("tr", {}, el("th", { scope: "row", text: name }), ...cls.map(k => el("td", { class: "num", text: p[k] === undefined ? "" : p[k].toFixed(3) })))));
  }

  // ---- events ----
  function renderEvents() {
    const ev = state.ov.events;
    $("#event-list").replaceChildren(...(ev.length ? ev.slice(0, 200).map(e => el("li", { "data-kind": e.kind },
      el("time", { datetime: e.at, text: new Date(e.at).toLocaleTimeString() }), el("span", { class: "kind", text: e.kind }),
      e.host ? el("strong", { text: e.host + " " }) : null, e.message)) : [el("li", { text: "nothing yet" })]));
  }

  // With a bearer token the CSV link cannot carry it: fetch, then save.
  async function csv(ev) {
    if (!sessionStorage.getItem(TOKEN_KEY)) return;
    ev.preventDefault();
    const a = ev.currentTarget;
    try {
      const r = await fetch(a.getAttribute("href"), { headers: authHeaders({ Accept: "text/csv" }) });
      if (!r.ok) throw new Error("CSV: HTTP " + r.status);
      const url = URL.createObjectURL(await r.blob());
      const tmp = el("a", { href: url, download: a.getAttribute("download") || "run.csv" });
      document.body.append(tmp); tmp.click(); tmp.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) { notice(e.message, true); }
  }

  async function login() {
    const tok = $("#login-token").value.trim();
    if (!tok) return;
    sessionStorage.setItem(TOKEN_KEY, tok);
    $("#login-token").value = "";
    try { await loadCladnets(); notice("signed in"); refresh(); } catch (e) { notice(e.message, true); }
  }

  // ---- wiring ----
  function wire() {
    $("#login-use").addEventListener("click", login);
    $("#csv").addEventListener("click", csv);
    $("#cladnet-select").addEventListener("change", e => select(e.target.value));
    $("#recommend").addEventListener("click", recommend);
    $("#create-form").addEventListener("submit", create);
    $("#btn-up").addEventListener("click", () => command("UP"));
    $("#btn-down").addEventListener("click", () => command("DOWN"));
    $("#btn-edit").addEventListener("click", edit);
    $("#edit-save").addEventListener("click", saveEdit);
    $("#edit-cancel").addEventListener("click", () => $("#edit-dialog").close());
    $("#btn-rules").addEventListener("click", rules);
    $("#rules-push").addEventListener("click", pushRules);
    $("#rules-cancel").addEventListener("click", () => $("#rules-dialog").close());
    $("#btn-token").addEventListener("click", token);
    $("#token-issue").addEventListener("click", issue);
    $("#token-copy").addEventListener("click", copyToken);
    $("#token-close").addEventListener("click", closeToken);
    $("#token-dialog").addEventListener("close", () => { $("#token-value").value = ""; });
    $("#btn-dissolve").addEventListener("click", dissolve);
    $("#run-test").addEventListener("click", runTest);
    $("#run-select").addEventListener("change", e => showRun(e.target.value));
    $("#bar-host").addEventListener("change", e => { state.barHost = e.target.value; renderBar(); });
    $("#member-filter").addEventListener("input", () => state.ov && renderMembers());
    $("#member-status").addEventListener("change", () => state.ov && renderMembers());
    for (const th of document.querySelectorAll("#member-table th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => {
        const k = th.dataset.sort;
        state.sort = { key: k, desc: state.sort.key === k ? !state.sort.desc : false };
        if (state.ov) renderMembers();
      });
    }
  }

  async function start() {
    wire();
    try { await loadCladnets(); } catch (e) { notice(e.message, true); }
    refresh();
    setInterval(refresh, POLL_MS);
    setInterval(() => loadCladnets().catch(() => {}), 10 * POLL_MS);
  }
  start();
})();
