// Unit tests of logic.js. console_test.go loads logic.js and this file in
// headless Chromium and calls CBLogicTests.run(): it returns the failures.
"use strict";
(function (root) {
  const L = root.CBLogic;
  const tests = [];
  const test = (name, fn) => tests.push({ name, fn });
  const eq = (got, want, what) => {
    const g = JSON.stringify(got), w = JSON.stringify(want);
    if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
  };

  test("domain ignores non-numbers and widens a flat set", () => {
    eq(L.domain([3, null, 1, NaN, 2, undefined, Infinity]), [1, 3], "mixed");
    eq(L.domain([]), [0, 1], "empty");
    eq(L.domain([2, 2]), [1.5, 2.5], "flat");
    eq(L.domain([0.2]), [0, 0.7], "flat near zero stays non-negative");
  });

  test("color: ends, middle, clamping, no data", () => {
    const table = [
      [0, 0, 10, "#1a9850"], [10, 0, 10, "#d73027"], [5, 0, 10, "#fee08b"],
      [-3, 0, 10, "#1a9850"], [99, 0, 10, "#d73027"], [2.5, 0, 10, "#91cf60"],
      [null, 0, 10, L.NODATA], [NaN, 0, 10, L.NODATA], [undefined, 0, 10, L.NODATA], [4, 4, 4, "#1a9850"],
    ];
    for (const [v, lo, hi, want] of table) eq(L.color(v, lo, hi), want, `color(${v}, ${lo}, ${hi})`);
    // from green to red: red minus green never falls
    let prev = -Infinity;
    for (let v = 0; v <= 10; v += 0.5) {
      const c = L.color(v, 0, 10), d = parseInt(c.slice(1, 3), 16) - parseInt(c.slice(3, 5), 16);
      if (d < prev) throw new Error(`red - green falls at ${v}: ${d} < ${prev}`);
      prev = d;
    }
  });

  test("legend has n stops from lo to hi", () => {
    const lg = L.legend(1, 5, 5);
    eq(lg.map(s => s.value), [1, 2, 3, 4, 5], "values");
    eq(lg[0].color, L.color(1, 1, 5), "first");
    eq(lg[4].color, "#d73027", "last");
    eq(L.legend(2, 2, 1).length, 1, "one stop");
  });

  test("matrix places pairs by host ID, diagonal empty", () => {
    const run = {
      hosts: [{ hostId: "A", hostName: "a" }, { hostId: "B", hostName: "b" }, { hostId: "C", hostName: "c" }],
      results: { interHostNetworkStatus: [
        { sourceId: "A", destinationId: "B", avgRttMs: 1 }, { sourceId: "B", destinationId: "A", avgRttMs: 2 },
        { sourceId: "C", destinationId: "A", avgRttMs: 3 }, { sourceId: "A", destinationId: "A", avgRttMs: 9 },
        { sourceId: "X", destinationId: "A", avgRttMs: 9 },
      ] },
    };
    const m = L.matrix(run);
    eq(m.hosts.length, 3, "hosts");
    eq(m.cells.map(r => r.map(c => c && c.avgRttMs)), [[null, 1, null], [2, null, null], [3, null, null]], "cells");
    eq(L.matrix(null).cells, [], "no run");
  });

  const members = [
    { hostName: "n10", hostId: "p1", ip: "10.0.0.10", status: "up", txBytes: 5, certNotAfter: "2030-01-01T00:00:00Z", lastSeen: "2026-01-01T00:00:03Z", details: { providerName: "aws", regionId: "us-east-1" } },
    { hostName: "n2", hostId: "p2", ip: "10.0.0.9", status: "lost", txBytes: 50, certNotAfter: "2029-01-01T00:00:00Z", lastSeen: "2026-01-01T00:00:01Z", details: { providerName: "gcp" } },
    { hostName: "n1", hostId: "p3", ip: "10.0.0.100", status: "revoked", txBytes: 0, lastSeen: "2026-01-01T00:00:02Z", details: {} },
    { hostName: "n2", hostId: "p0", ip: "", status: "up", txBytes: 7, details: { providerName: "aws", regionId: "eu-west-1" } },
  ];
  const hosts = ms => ms.map(m => m.hostName + "/" + m.hostId);

  test("sortMembers: every key, both directions, stable ties", () => {
    const table = [
      ["host", false, ["n1/p3", "n2/p0", "n2/p2", "n10/p1"]],
      ["host", true, ["n10/p1", "n2/p0", "n2/p2", "n1/p3"]],
      ["ip", false, ["n2/p2", "n10/p1", "n1/p3", "n2/p0"]],
      ["status", false, ["n2/p0", "n10/p1", "n2/p2", "n1/p3"]],
      ["tx", true, ["n2/p2", "n2/p0", "n10/p1", "n1/p3"]],
      ["cert", false, ["n1/p3", "n2/p0", "n2/p2", "n10/p1"]],
      ["seen", true, ["n10/p1", "n1/p3", "n2/p2", "n2/p0"]],
      ["cloud", false, ["n1/p3", "n2/p0", "n10/p1", "n2/p2"]],
      ["nonsense", false, ["n1/p3", "n2/p0", "n2/p2", "n10/p1"]],
    ];
    for (const [key, desc, want] of table) eq(hosts(L.sortMembers(members, key, desc)), want, `sort by ${key}${desc ? " desc" : ""}`);
    eq(hosts(members)[0], "n10/p1", "input not modified");
  });

  test("sortMembers handles 200 members in a total order", () => {
    const many = [];
    for (let i = 0; i < 200; i++) many.push({ hostName: "vm" + (i % 50), hostId: "id" + i, ip: "10.1." + (i >> 8) + "." + (i & 255), status: ["up", "lost"][i % 2] });
    const s = L.sortMembers(many, "ip", false);
    for (let i = 1; i < s.length; i++) if (L.ipNum(s[i - 1].ip) > L.ipNum(s[i].ip)) throw new Error("ip order broken at " + i);
    eq(L.sortMembers(many, "status", false).slice(0, 100).every(m => m.status === "up"), true, "up first");
  });

  test("filterMembers: words, status, cloud", () => {
    const table = [
      ["", "", 4], ["n2", "", 2], ["aws", "", 2], ["aws east", "", 1], ["10.0.0.1", "", 2],
      ["", "up", 2], ["n2", "lost", 1], ["P3", "", 1], ["zzz", "", 0],
    ];
    for (const [text, status, want] of table) eq(L.filterMembers(members, text, status).length, want, `filter(${text}, ${status})`);
  });

  test("natural and ipNum", () => {
    eq(["n10", "n9", "n1", "m"].sort(L.natural), ["m", "n1", "n9", "n10"], "natural");
    eq(L.ipNum("10.0.1.2"), 167772418, "ipNum");
    eq(L.ipNum("nope"), Infinity, "not an address");
  });

  test("pathText and transport", () => {
    eq(L.pathText({ direct: 2, relayed: 0, none: 0 }, false), "2 direct", "direct only");
    eq(L.pathText({ direct: 1, relayed: 1, none: 1 }, false), "1 direct, 1 relayed, 1 none", "all kinds");
    eq(L.pathText({ direct: 0, relayed: 3, none: 0 }, true), "was 0 direct, 3 relayed", "gone");
    eq(L.pathText(undefined, false), "0 direct", "no counts");
    eq(L.transport("/ip4/1.2.3.4/udp/7460/quic-v1"), "quic-v1", "quic");
    eq(L.transport("/ip4/1.2.3.4/tcp/7460"), "tcp", "tcp");
    eq(L.transport("/ip4/1/tcp/2/p2p/R/p2p-circuit"), "relay", "relay");
    eq(L.transport(""), "", "none");
  });

  test("formatting", () => {
    eq([L.bytes(0), L.bytes(1023), L.bytes(1536), L.bytes(5 * 1048576)], ["0 B", "1023 B", "1.5 KiB", "5.0 MiB"], "bytes");
    eq([L.usd(0), L.usd(0.00000018), L.usd(0.01234), L.usd(12.345), L.usd(1234)], ["$0.0000", "<$0.0001", "$0.0123", "$12.35", "$1234"], "usd");
    eq([L.ms(0.123), L.ms(12.34), L.ms(null)], ["0.12 ms", "12.3 ms", "–"], "ms");
    const now = Date.parse("2026-01-01T01:00:00Z");
    eq([L.ago("2026-01-01T00:59:55Z", now), L.ago("2026-01-01T00:30:00Z", now), L.ago("0001-01-01T00:00:00Z", now), L.ago("", now)], ["5 s ago", "30 min ago", "never", "never"], "ago");
    eq([L.until("2026-01-01T00:00:00Z", now), L.until("2026-01-01T03:00:00Z", now), L.until("2026-01-11T01:00:00Z", now)], ["expired", "2 h", "10 d"], "until");
  });

  test("bars: the largest reaches r1, none reaches past it", () => {
    const b = L.bars([1, 4, null, 2], 10, 50);
    eq(b.map(x => x.r1), [20, 50, 10, 30], "radii");
    eq(b.map(x => +x.angle.toFixed(4)), [0, 1.5708, 3.1416, 4.7124], "angles");
    eq(b[2].value, null, "missing value");
    eq(L.bars([], 1, 2), [], "empty");
    const p = L.arc(0, 0, 1, 2, 0, Math.PI / 2);
    if (!/^M0\.00 -1\.00L0\.00 -2\.00A2 2 0 0 1 2\.00 0\.00L1\.00 0\.00A1 1 0 0 0 0\.00 -1\.00Z$/.test(p)) throw new Error("arc: " + p);
  });

  test("lineChart maps time and value into the box", () => {
    eq(L.lineChart([{ t: 0, v: 0 }, { t: 10, v: 5 }, { t: 20, v: 10 }], 100, 50, 10), "0.0,50.0 50.0,25.0 100.0,0.0", "points");
    eq(L.lineChart([], 100, 50, 1), "", "empty");
    eq(L.lineChart([{ t: 5, v: 20 }], 100, 50, 10), "100.0,0.0", "one sample, clamped");
  });

  root.CBLogicTests = {
    count: tests.length,
    run() {
      const failures = [];
      for (const t of tests) {
        try { t.fn(); } catch (e) { failures.push(t.name + ": " + e.message); }
      }
      return { count: tests.length, failures };
    },
  };
})(globalThis);
