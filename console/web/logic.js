// The console's pure logic: no DOM, no fetch. logic_test.js tests it.
"use strict";
(function (root) {
  // RTT colour ramp: low = green, middle = yellow, high = red.
  const RAMP = [[26, 152, 80], [145, 207, 96], [254, 224, 139], [252, 141, 89], [215, 48, 39]];
  const NODATA = "#9e9e9e";

  // domain returns [min, max] of the finite values (a flat or empty set
  // is widened so that a scale never divides by zero).
  function domain(values) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) {
      if (typeof v === "number" && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    if (lo === Infinity) return [0, 1];
    if (hi - lo < 1e-9) return [Math.max(0, lo - 0.5), hi + 0.5];
    return [lo, hi];
  }

  const hex = n => n.toString(16).padStart(2, "0");

  // color maps v in [lo, hi] onto the ramp ("#rrggbb"); no value → grey.
  function color(v, lo, hi) {
    if (typeof v !== "number" || !isFinite(v)) return NODATA;
    let t = hi > lo ? (v - lo) / (hi - lo) : 0;
    t = Math.min(1, Math.max(0, t));
    const x = t * (RAMP.length - 1), i = Math.min(RAMP.length - 2, Math.floor(x)), f = x - i;
    const c = RAMP[i].map((a, k) => Math.round(a + (RAMP[i + 1][k] - a) * f));
    return "#" + c.map(hex).join("");
  }

  // legend returns n stops from lo to hi with their colours.
  function legend(lo, hi, n) {
    const out = [];
    for (let i = 0; i < n; i++) {
      const v = n === 1 ? lo : lo + (hi - lo) * i / (n - 1);
      out.push({ value: v, color: color(v, lo, hi) });
    }
    return out;
  }

  // matrix turns a connectivity test run into an N×N grid: hosts in the
  // run's order, cells[i][j] the pair i → j (null on the diagonal or when
  // the run has no such pair).
  function matrix(run) {
    const hosts = (run && run.hosts) || [];
    const idx = new Map(hosts.map((h, i) => [h.hostId, i]));
    const cells = hosts.map(() => hosts.map(() => null));
    const pairs = (run && run.results && run.results.interHostNetworkStatus) || [];
    for (const p of pairs) {
      const i = idx.get(p.sourceId), j = idx.get(p.destinationId);
      if (i === undefined || j === undefined || i === j) continue;
      cells[i][j] = p;
    }
    return { hosts, cells };
  }

  // Member statuses in the order a sort puts them (healthy first).
  const STATUS_ORDER = { up: 0, down: 1, lost: 2, left: 3, revoked: 4 };

  // ipNum is an IPv4 address as a number (non-addresses sort last).
  function ipNum(s) {
    const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s || "");
    if (!m) return Infinity;
    return ((+m[1]) * 16777216) + ((+m[2]) << 16) + ((+m[3]) << 8) + (+m[4]);
  }

  // natural compares strings with their digit runs as numbers (n2 < n10).
  function natural(a, b) {
    const re = /(\d+)|(\D+)/g;
    const as = String(a ?? "").match(re) || [], bs = String(b ?? "").match(re) || [];
    for (let i = 0; i < Math.min(as.length, bs.length); i++) {
      const x = as[i], y = bs[i];
      if (x === y) continue;
      const nx = /^\d/.test(x), ny = /^\d/.test(y);
      if (nx && ny && +x !== +y) return +x - +y;
      return x < y ? -1 : 1;
    }
    return as.length - bs.length;
  }

  const cloudOf = m => { const d = m.details || {}; return [d.providerName, d.regionId, d.availabilityZoneId, d.virtualNetworkId].filter(Boolean).join(" / "); };
  const time = s => { const t = Date.parse(s || ""); return isNaN(t) || t <= 0 ? -Infinity : t; };

  // Sort keys of the members table.
  const KEYS = {
    host: (a, b) => natural(a.hostName, b.hostName),
    ip: (a, b) => ipNum(a.ip) - ipNum(b.ip) || 0,
    status: (a, b) => (STATUS_ORDER[a.status] ?? 9) - (STATUS_ORDER[b.status] ?? 9),
    cloud: (a, b) => natural(cloudOf(a), cloudOf(b)),
    tx: (a, b) => (a.txBytes || 0) - (b.txBytes || 0),
    rx: (a, b) => (a.rxBytes || 0) - (b.rxBytes || 0),
    cert: (a, b) => time(a.certNotAfter) - time(b.certNotAfter),
    seen: (a, b) => time(a.lastSeen) - time(b.lastSeen),
  };

  // sortMembers returns a sorted copy: by key, ascending unless desc, ties
  // broken by host name then peer ID (a stable, total order).
  function sortMembers(members, key, desc) {
    const cmp = KEYS[key] || KEYS.host;
    const dir = desc ? -1 : 1;
    return members.slice().sort((a, b) => {
      const c = cmp(a, b);
      if (c !== 0 && !isNaN(c)) return dir * c;
      return natural(a.hostName, b.hostName) || (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0);
    });
  }

  // filterMembers keeps the members whose host, IP, peer ID or cloud
  // contains every word of text (case-insensitive) and, if status is not
  // empty, whose status is it.
  function filterMembers(members, text, status) {
    const words = String(text || "").toLowerCase().split(/\s+/).filter(Boolean);
    return members.filter(m => {
      if (status && m.status !== status) return false;
      const hay = [m.hostName, m.ip, m.hostId, cloudOf(m)].join(" ").toLowerCase();
      return words.every(w => hay.includes(w));
    });
  }

  // pathText says a member's path counts ({direct, relayed, none}), "was …"
  // for a member that went away.
  function pathText(c, gone) {
    c = c || {};
    const parts = [`${c.direct || 0} direct`];
    if (c.relayed) parts.push(`${c.relayed} relayed`);
    if (c.none) parts.push(`${c.none} none`);
    return (gone ? "was " : "") + parts.join(", ");
  }

  // transport is the transport of a path's multiaddr (quic-v1, tcp, ...).
  function transport(remote) {
    if (!remote) return "";
    if (remote.includes("/p2p-circuit")) return "relay";
    for (const t of ["webtransport", "quic-v1", "quic", "ws", "tcp", "udp"]) if (remote.includes("/" + t)) return t;
    return "";
  }

  function bytes(b) {
    b = b || 0;
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i === 0 ? String(b) : b.toFixed(1)) + " " + u[i];
  }

  function usd(v) {
    v = v || 0;
    if (v > 0 && v < 0.00005) return "<$0.0001";
    if (Math.abs(v) >= 100) return "$" + v.toFixed(0);
    if (Math.abs(v) >= 1) return "$" + v.toFixed(2);
    return "$" + v.toFixed(4);
  }

  const ms = v => (typeof v === "number" && isFinite(v)) ? (v < 10 ? v.toFixed(2) : v.toFixed(1)) + " ms" : "–";

  // ago says how long before now (ms since epoch) the time s was.
  function ago(s, now) {
    const t = time(s);
    if (t === -Infinity) return "never";
    const d = Math.max(0, Math.round((now - t) / 1000));
    if (d < 60) return d + " s ago";
    if (d < 3600) return Math.floor(d / 60) + " min ago";
    if (d < 86400) return Math.floor(d / 3600) + " h ago";
    return Math.floor(d / 86400) + " d ago";
  }

  // until says how long after now the time s is ("expired" if past).
  function until(s, now) {
    const t = time(s);
    if (t === -Infinity) return "–";
    const d = Math.round((t - now) / 1000);
    if (d <= 0) return "expired";
    if (d < 3600) return Math.floor(d / 60) + " min";
    if (d < 86400 * 2) return Math.floor(d / 3600) + " h";
    return Math.floor(d / 86400) + " d";
  }

  // bars lays out a circular barplot: one bar per value around a circle,
  // from radius r0 outwards, the largest reaching r1. Angles in radians,
  // clockwise from the top.
  function bars(values, r0, r1) {
    const [, hi] = domain(values.concat([0]));
    const n = values.length, step = n ? 2 * Math.PI / n : 0;
    return values.map((v, i) => {
      const ok = typeof v === "number" && isFinite(v);
      return { angle: i * step, width: step * 0.8, r0, r1: ok ? r0 + (r1 - r0) * (hi > 0 ? v / hi : 0) : r0, value: ok ? v : null };
    });
  }

  // arc is an SVG path of an annular sector centred at (cx, cy).
  function arc(cx, cy, r0, r1, a0, a1) {
    const pt = (r, a) => [cx + r * Math.sin(a), cy - r * Math.cos(a)].map(x => (Math.abs(x) < 0.005 ? 0 : x).toFixed(2)).join(" ");
    const large = a1 - a0 > Math.PI ? 1 : 0;
    return `M${pt(r0, a0)}L${pt(r1, a0)}A${r1} ${r1} 0 ${large} 1 ${pt(r1, a1)}L${pt(r0, a1)}A${r0} ${r0} 0 ${large} 0 ${pt(r0, a0)}Z`;
  }

  // lineChart maps samples [{t, v}] into a w×h box: an SVG polyline's
  // points (time left to right, value bottom to top, from 0).
  function lineChart(samples, w, h, vmax) {
    if (!samples.length) return "";
    const t0 = samples[0].t, t1 = samples[samples.length - 1].t;
    const top = vmax > 0 ? vmax : 1;
    return samples.map(s => {
      const x = t1 > t0 ? (s.t - t0) / (t1 - t0) * w : w;
      const y = h - Math.min(1, Math.max(0, s.v / top)) * h;
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" ");
  }

  const api = { domain, color, legend, matrix, sortMembers, filterMembers, natural, ipNum, pathText, transport, bytes, usd, ms, ago, until, bars, arc, lineChart, NODATA, STATUS_ORDER };
  root.CBLogic = api;
  if (typeof module !== "undefined" && module.exports) module.exports = api;
})(typeof globalThis !== "undefined" ? globalThis : this);
