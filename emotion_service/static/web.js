// The web UI's behaviour: local times, charts (uPlot), live updates (server-sent events),
// job progress, and recording from the microphone. No framework; every chart has a table beside it.
"use strict";

const COLOURS = JSON.parse(document.getElementById("colours").textContent);
const SILENCE = "#c8c8c8";
const colour = (label) => COLOURS[label] || "#444";
const NAMES = { ANG: "anger", DIS: "disgust", FEA: "fear", HAP: "happiness", NEU: "neutral", SAD: "sadness" };

// Dark or white text on a chip, whichever contrasts more with its colour (WCAG), as the server does.
function luminance(hex) {
  const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
    .map((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}
function textOn(hex) {
  const l = luminance(hex);
  return (1.05 / (l + 0.05)) >= ((l + 0.05) / (luminance("#000000") + 0.05)) ? "#ffffff" : "#000000";
}

// Times are sent in UTC (ISO 8601) and shown in the viewer's time zone.
function localTimes(root = document) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) el.textContent = when.toLocaleString();
  }
}

// Who a window or utterance belongs to, as the server names parties (plugins.types.party_of).
function partyOf(w) { return w.speaker || `channel ${w.channel || 0}`; }

function chartWidth(el) { return Math.max(280, el.clientWidth || 600); }

function timelineChart(el) {
  const data = JSON.parse(el.dataset.timeline);
  el.timeline = { labels: Object.keys(data.series), x: data.x, series: data.series, parties: data.parties,
    only: "", plot: null };
  if (!data.x.length) { el.textContent = "Nothing scored yet."; return; }
  drawTimeline(el);
}

// The chart's columns: every point, or with the speaker filter on, that party's points only (the
// other party's turns and the pauses between are left out, so one party's line runs on).
function timelineColumns(t) {
  if (!t.only || !t.parties) return turnsApart(t);
  const keep = t.x.map((_, i) => t.parties[i] === t.only);
  const pick = (column) => column.filter((_, i) => keep[i]);
  return [pick(t.x), ...t.labels.map((l) => pick(t.series[l]))];
}

// Every point, with a gap (a null halfway) where one party's turn meets another's: a line joins one
// speaker's utterances only, never one speaker's to the other's across a short pause.
function turnsApart(t) {
  const columns = [[], ...t.labels.map(() => [])];
  t.x.forEach((x, i) => {
    const before = i > 0 && t.parties ? t.parties[i - 1] : "";
    if (before && t.parties[i] && before !== t.parties[i]) {
      columns[0].push((t.x[i - 1] + x) / 2);
      for (let k = 1; k < columns.length; k++) columns[k].push(null);
    }
    columns[0].push(x);
    t.labels.forEach((l, k) => columns[k + 1].push(t.series[l][i]));
  });
  return columns;
}

// Whether the score chart can follow the speaker filter (a long session's averaged points mix parties).
function timelineFollowsFilter() {
  const el = document.getElementById("timeline");
  return Boolean(el && el.timeline && el.timeline.parties);
}

function drawTimeline(el) {
  const { labels } = el.timeline;
  const opts = {
    width: chartWidth(el), height: 300,
    scales: { x: { time: false }, y: { range: [0, 1] } },
    axes: [{ label: "seconds" }, { label: "score" }],
    // Every point drawn, however dense: an utterance with a pause on both sides has no line to show it.
    series: [{ label: "time (s)" }, ...labels.map((l) => ({ label: l, stroke: colour(l), width: 2, spanGaps: false,
      points: { show: true, size: 5, width: 1, fill: colour(l) } }))],
  };
  el.textContent = "";
  const plot = new uPlot(opts, timelineColumns(el.timeline), el);
  el.timeline.plot = plot;
  legendCaption(plot, "Scores at the moment under the pointer");
  new ResizeObserver(() => plot.setSize({ width: chartWidth(el), height: 300 })).observe(el);
}

// A running stream's window joins the score chart (a no-speech or skipped window breaks the lines).
function extendTimeline(el, w) {
  const t = el.timeline;
  if (!t) return;
  t.x.push(Math.round(((w.start_s + w.end_s) / 2) * 1000) / 1000);
  for (const l of t.labels) t.series[l].push(w.label ? (w.scores[l] || 0) : null);
  if (t.parties) t.parties.push(w.label ? partyOf(w) : "");
  if (t.plot) t.plot.setData(timelineColumns(t));
  else drawTimeline(el);
}

// Who spoke when: one lane per speaker (else per channel; one lane when there is neither), each
// utterance or window a bar from its start to its end in its emotion's colour, never thinner than
// MIN_SPAN_PX. Drawn as SVG at the element's width (again when it changes), so that bars are whole pixels.
const NO_SPEECH = "#8a8a8a";
const LANE_HEIGHT = 26, LANE_GAP = 8, AXIS_HEIGHT = 22, NAME_WIDTH = 86, MIN_SPAN_PX = 2;
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function clock(seconds, step) {
  if (step >= 60 || seconds >= 600) {
    const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    return `${m}:${String(s).padStart(2, "0")}`;
  }
  return `${Math.round(seconds * 10) / 10} s`;
}

// A session page's figures (labels, tallies...), parsed once: the filter and the live updates share them.
let sessionData = null;
function sessionInfo() {
  const el = document.getElementById("session-live");
  if (!sessionData && el) sessionData = JSON.parse(el.textContent);
  return sessionData;
}

function laneChart(el) {
  el.lanes = { ...JSON.parse(el.dataset.lanes), labels: sessionInfo().labels, only: "" };
  drawLanes(el);
  let width = el.clientWidth;
  new ResizeObserver(() => { if (el.clientWidth !== width) { width = el.clientWidth; drawLanes(el); } }).observe(el);
}

function drawLanes(el) {
  const state = el.lanes;
  const shown = state.parties.map((p, i) => i).filter((i) => !state.only || state.parties[i].key === state.only);
  if (!shown.length) { el.textContent = "Nothing scored yet."; return; }
  const width = Math.max(280, el.clientWidth || 600);
  const plotWidth = width - NAME_WIDTH - 6;
  const duration = Math.max(state.duration_s, 1);
  const at = (t) => NAME_WIDTH + (Math.min(Math.max(t, 0), duration) / duration) * plotWidth;
  const height = shown.length * (LANE_HEIGHT + LANE_GAP) + AXIS_HEIGHT;
  const names = shown.map((i) => state.parties[i].name).join(", ");
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Who spoke when (${names}), each bar coloured by its emotion; the table below holds the same.` });
  // No speech: hatched, apart from every emotion's colour (neutral's grey included).
  const defs = svg("defs", {});
  const hatch = svg("pattern", { id: "no-speech-hatch", patternUnits: "userSpaceOnUse", width: 6, height: 6,
    patternTransform: "rotate(45)" });
  hatch.append(svg("rect", { width: 6, height: 6, fill: "#ffffff" }),
    svg("line", { x1: 1, y1: 0, x2: 1, y2: 6, stroke: NO_SPEECH, "stroke-width": 2 }));
  defs.append(hatch);
  root.append(defs);
  const row = new Map(shown.map((party, k) => [party, k]));
  const lanes = shown.map((party, k) => {
    const y = k * (LANE_HEIGHT + LANE_GAP);
    const g = svg("g", { class: "lane", "data-party": state.parties[party].key });
    g.append(svg("rect", { class: "lane-band", x: NAME_WIDTH, y, width: plotWidth, height: LANE_HEIGHT, fill: "#f2f2f2" }));
    g.append(svg("text", { class: "lane-name", x: NAME_WIDTH - 6, y: y + LANE_HEIGHT / 2, "text-anchor": "end",
      "dominant-baseline": "middle" }, state.parties[party].name));
    root.append(g);
    return g;
  });
  const unit = el.dataset.unit || "windows";
  for (const [start, end, labelIndex, party, count] of state.spans) {
    if (!row.has(party)) continue;
    const k = row.get(party);
    const label = labelIndex >= 0 ? state.labels[labelIndex] : "";
    const w = Math.max(MIN_SPAN_PX, at(end) - at(start));
    const x = Math.min(at(start), NAME_WIDTH + plotWidth - w);
    const rect = svg("rect", { class: "span", x: x.toFixed(2), y: k * (LANE_HEIGHT + LANE_GAP) + 2, width: w.toFixed(2),
      height: LANE_HEIGHT - 4, fill: label ? colour(label) : "url(#no-speech-hatch)", "data-label": label || "no-speech" });
    if (!label) { rect.setAttribute("stroke", NO_SPEECH); rect.setAttribute("stroke-width", 1); }
    const what = label ? `${label} ${NAMES[label] || label}` : "no speech, no emotion claimed";
    const many = count > 1 ? ` (${count} ${unit}${state.binned ? ", the emotion most of them won" : ""})` : "";
    rect.append(svg("title", {}, `${state.parties[party].name}, ${start.toFixed(1)}–${end.toFixed(1)} s: ${what}${many}`));
    lanes[k].append(rect);
  }
  // The time axis: about one tick per 90 px, at round steps.
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
  const step = steps.find((s) => (plotWidth / duration) * s >= 90) || 14400;
  const axisY = shown.length * (LANE_HEIGHT + LANE_GAP);
  const axis = svg("g", { class: "lane-axis" });
  axis.append(svg("line", { x1: NAME_WIDTH, x2: NAME_WIDTH + plotWidth, y1: axisY, y2: axisY, stroke: "#767676" }));
  for (let t = 0; t <= duration + 1e-9; t += step) {
    const x = at(t);
    axis.append(svg("line", { x1: x, x2: x, y1: axisY, y2: axisY + 4, stroke: "#767676" }));
    axis.append(svg("text", { x, y: axisY + 16, "text-anchor": t === 0 ? "start" : "middle" }, clock(t, step)));
  }
  root.append(axis);
  el.replaceChildren(root);
}

// A running stream's window joins its lane (a window the server skipped was not scored: no bar).
function extendLanes(el, w, party) {
  const state = el.lanes;
  if (!state || w.skipped) return;
  let p = state.parties.findIndex((q) => q.key === party);
  if (p < 0) {
    state.parties.push({ key: party, name: state.parties.length || w.speaker ? party : "all" });
    p = state.parties.length - 1;
  }
  const labelIndex = w.label ? state.labels.indexOf(w.label) : -1;
  const last = [...state.spans].reverse().find((s) => s[3] === p);
  const start = Math.round(w.start_s * 1000) / 1000, end = Math.round(w.end_s * 1000) / 1000;
  if (last && last[2] === labelIndex && start <= last[1] + 1e-3) { last[1] = Math.max(last[1], end); last[4] += 1; }
  else state.spans.push([start, end, labelIndex, p, 1]);
  state.duration_s = Math.max(state.duration_s, end);
  drawLanes(el);
}

// The distribution, the header's dominant emotion and a party's summary, from the tallies (counts,
// wins and score sums): the rule of the server's summaries (most wins, then the highest mean score).
function dominant(tally, labels) {
  let best = "";
  for (const l of labels) {
    if (!tally.count) break;
    const wins = tally.wins[l] || 0, mean = (tally.sums[l] || 0) / tally.count;
    const top = best ? [tally.wins[best] || 0, (tally.sums[best] || 0) / tally.count] : [-1, -1];
    if (wins > top[0] || (wins === top[0] && mean > top[1])) best = l;
  }
  return best;
}

function showDistribution(tally) {
  for (const tr of document.querySelectorAll("#distribution tbody tr[data-label]")) {
    const l = tr.dataset.label;
    const share = tally.count ? (tally.wins[l] || 0) / tally.count : 0;
    tr.querySelector(".bar").style.width = `${Math.round(share * 800) / 100}rem`;
    tr.querySelector(".share").textContent = `${Math.round(share * 100)} %`;
    tr.querySelector(".mean").textContent = (tally.count ? (tally.sums[l] || 0) / tally.count : 0).toFixed(3);
  }
}

// The speaker (or channel) filter: only that party's rows, lane, distribution and summary.
function partyFilter() {
  const select = document.getElementById("party-filter");
  if (!select) return;
  const info = sessionInfo();
  const status = document.getElementById("filter-status");
  const lanes = document.getElementById("lanes");
  const apply = () => {
    const key = select.value;
    for (const tr of document.querySelectorAll("#windows tbody tr, #parties tbody tr")) {
      tr.hidden = Boolean(key) && tr.dataset.party !== key;
    }
    if (lanes && lanes.lanes) { lanes.lanes.only = key; drawLanes(lanes); }
    const timeline = document.getElementById("timeline");
    if (timelineFollowsFilter()) {
      timeline.timeline.only = key;
      if (timeline.timeline.plot) timeline.timeline.plot.setData(timelineColumns(timeline.timeline));
    }
    const tally = info.tallies[key] || { count: 0, seconds: 0, wins: {}, sums: {} };
    showDistribution(tally);
    const name = select.selectedOptions[0].textContent;
    filterAlerts(key, name);
    document.getElementById("distribution-party").textContent = key ? ` of ${name}` : "";
    status.replaceChildren();
    if (key) {
      const best = dominant(tally, info.labels);
      status.append(`Showing ${name} only: ${tally.count} ${info.unit} with speech, ${tally.seconds.toFixed(1)} s; dominant emotion `,
        best ? chip(best) : "–", timelineFollowsFilter() ? "" : " (the score chart below averages every party's)");
    }
    const url = new URL(location.href);
    if (key) url.searchParams.set("party", key); else url.searchParams.delete("party");
    history.replaceState(null, "", url);
  };
  select.addEventListener("change", apply);
  const asked = new URLSearchParams(location.search).get("party");
  if (asked && [...select.options].some((o) => o.value === asked)) { select.value = asked; apply(); }
}

// An alert's party: the speaker it names; else (one stored before alerts named theirs, or a channel's)
// the party whose utterance with speech ends at its time, else holds it, else is nearest (the rule of
// the per-party alert counts, plugins.types.summarise_parties), among the table's rows on this page.
function alertParty(li) {
  const select = document.getElementById("party-filter");
  const known = select ? [...select.options].map((o) => o.value) : [];
  // The speaker it names, when that is one of the page's parties (as the per-party counts read it).
  if (li.dataset.party && known.includes(li.dataset.party)) return li.dataset.party;
  const time = parseFloat(li.dataset.time);
  let party = "", best = null;
  for (const tr of document.querySelectorAll("#windows tbody tr[data-end]:not(.silence)")) {
    const start = parseFloat(tr.dataset.start), end = parseFloat(tr.dataset.end);
    const key = [Math.max(start - time, time - end, 0), Math.abs(end - time)];
    if (!best || key[0] < best[0] || (key[0] === best[0] && key[1] < best[1])) { best = key; party = tr.dataset.party; }
  }
  return party;
}

// The Alerts section with the filter on: that party's alerts only (another's would point at hidden rows).
function filterAlerts(key, name) {
  const list = document.getElementById("alerts");
  const none = document.getElementById("no-alerts");
  if (!list || !none) return;
  let shown = 0;
  for (const li of list.children) {
    li.hidden = Boolean(key) && alertParty(li) !== key;
    if (!li.hidden) shown += 1;
  }
  list.hidden = shown === 0;
  none.hidden = shown > 0;
  none.textContent = key && list.children.length ? `No alerts were raised for ${name}.` : "No alerts were raised.";
}

// A running stream's alert joins the Alerts section as it is raised (as the server's page lists it).
function addAlert(alert) {
  const list = document.getElementById("alerts");
  if (!list) return;
  const li = document.createElement("li");
  li.dataset.time = String(alert.time_s);
  if (alert.speaker) li.dataset.party = alert.speaker;
  const link = document.createElement("a");
  link.href = `#t-${alert.time_s.toFixed(1)}`;
  link.textContent = `${alert.time_s.toFixed(1)} s`;
  const severity = document.createElement("span");
  severity.className = alert.severity;
  severity.textContent = alert.severity;
  li.append(link, " ", severity, ` ${alert.kind}`);
  if (alert.label) li.append(" ", chip(alert.label));
  li.append(`: ${alert.message}`);
  list.append(li);
  const select = document.getElementById("party-filter");
  filterAlerts(select ? select.value : "", select ? select.selectedOptions[0].textContent : "");
}

// uPlot's legend is a table: it gets a caption, as every table does.
function legendCaption(plot, text) {
  const table = plot.root.querySelector("table");
  if (table && !table.caption) table.createCaption().textContent = text;
  if (table && table.caption) table.caption.className = "visually-hidden";
}

function trendsChart(el) {
  const buckets = JSON.parse(el.dataset.buckets);
  const labels = JSON.parse(el.dataset.labels);
  const x = buckets.map((b) => Date.parse(b.start + "T00:00:00Z") / 1000);
  const series = labels.map((l) => buckets.map((b) => (b.sessions ? (b.shares[l] || 0) : null)));
  const opts = {
    width: chartWidth(el), height: 300,
    scales: { y: { range: [0, 1] } },
    axes: [{}, { label: "share" }],
    series: [{ label: "from" }, ...labels.map((l) => ({ label: l, stroke: colour(l), width: 2, points: { show: true } }))],
  };
  const plot = new uPlot(opts, [x, ...series], el);
  legendCaption(plot, "Shares at the moment under the pointer");
  new ResizeObserver(() => plot.setSize({ width: chartWidth(el), height: 300 })).observe(el);
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function chip(label) {
  const span = document.createElement("span");
  span.className = "chip";
  span.style.background = colour(label);
  span.style.color = textOn(colour(label));
  if (NAMES[label]) span.title = NAMES[label];
  span.textContent = label;
  return span;
}

// A running session's page grows as its windows are scored: the table, the lanes and the score
// chart, the header's duration and dominant emotion, and the distribution. Windows scored before
// the page subscribed come from /api/live; each window counts once (by its index).
function followSession() {
  const info = sessionInfo();
  if (!info || !info.running) return;
  const { session, labels, tallies, seen: stored } = info;
  const body = document.querySelector("#windows tbody");
  const seen = new Set(stored);
  const everyone = tallies[""] || (tallies[""] = { count: 0, seconds: 0, wins: {}, sums: {} });
  const duration = document.getElementById("session-duration");
  let longest = parseFloat(duration ? duration.textContent : "0") || 0;
  const add = (w) => {
    if (seen.has(w.index)) return;
    seen.add(w.index);
    const empty = document.querySelector("p.empty");
    if (empty && w.label) empty.remove();
    const party = partyOf(w);
    appendRow(w, party);
    if (w.label) {
      for (const key of ["", party]) {
        const t = tallies[key] || (tallies[key] = { count: 0, seconds: 0, wins: {}, sums: {} });
        t.count += 1;
        t.seconds += Math.max(0, w.end_s - w.start_s);
        t.wins[w.label] = (t.wins[w.label] || 0) + 1;
        for (const l of labels) t.sums[l] = (t.sums[l] || 0) + (w.scores[l] || 0);
      }
    }
    longest = Math.max(longest, w.end_s);
    if (duration) duration.textContent = `${longest.toFixed(1)} s`;
    const best = dominant(everyone, labels);
    const shown = document.getElementById("session-dominant");
    if (shown) shown.replaceChildren(best ? chip(best) : "–");
    const select = document.getElementById("party-filter");
    showDistribution(tallies[select ? select.value : ""] || everyone);
    const lanes = document.getElementById("lanes");
    if (lanes) extendLanes(lanes, w, party);
    const timeline = document.getElementById("timeline");
    if (timeline) extendTimeline(timeline, w);
  };
  const appendRow = (w, party) => {
    const row = document.createElement("tr");
    row.dataset.party = party;
    row.dataset.start = String(w.start_s);
    row.dataset.end = String(w.end_s);
    if (w.label) row.id = `t-${w.end_s.toFixed(1)}`; // what an alert's link points at, as on the server's rows
    const number = w.label ? body.querySelectorAll("tr:not(.silence)").length + 1 : "";
    row.append(cell(number, "num"), cell(w.start_s.toFixed(1), "num"), cell(w.end_s.toFixed(1), "num"));
    if (w.label) {
      const td = document.createElement("td"); td.append(chip(w.label)); row.append(td);
      for (const l of labels) row.append(cell((w.scores[l] || 0).toFixed(3), "num"));
    } else {
      const quiet = w.no_speech || w.silent;
      row.className = quiet ? "silence no-speech" : "silence";
      const td = cell(quiet ? "no speech: no emotion claimed" : "not scored: the server was busy");
      td.colSpan = labels.length + 1; row.append(td);
    }
    // In time order: a window fetched late goes before those that came after it.
    const later = [...body.children].find((tr) => parseFloat(tr.dataset.start) > w.start_s);
    body.insertBefore(row, later || null);
  };
  const source = new EventSource(`/events?session=${encodeURIComponent(session)}`);
  source.onopen = () => {
    fetch("/api/live").then((r) => r.json()).then((state) => {
      const stream = state.streams.find((s) => s.session_id === session);
      if (stream) for (const w of stream.windows) add(w);
    });
  };
  source.addEventListener("window", (message) => add(JSON.parse(message.data)));
  source.addEventListener("alert", (message) => {
    const alerts = document.getElementById("session-alerts");
    if (alerts) alerts.textContent = `${(parseInt(alerts.textContent, 10) || 0) + 1} alert(s)`;
    addAlert(JSON.parse(message.data).alert);
  });
  source.addEventListener("stream_ended", () => { source.close(); location.reload(); });
}

// The live monitor: one card per running stream, a strip of its latest windows.
function liveMonitor() {
  const container = document.getElementById("streams");
  if (!container) return;
  const status = document.getElementById("live-status");
  const empty = document.getElementById("live-empty");
  const cards = new Map();
  const refreshEmpty = () => { empty.hidden = cards.size > 0; };

  function card(stream) {
    let entry = cards.get(stream.session_id);
    if (entry) return entry;
    const article = document.createElement("article");
    article.className = "stream";
    article.dataset.session = stream.session_id;
    const title = document.createElement("h2");
    const link = document.createElement("a");
    link.href = `/sessions/${encodeURIComponent(stream.session_id)}`;
    link.textContent = stream.session_id;
    title.append(link);
    const latest = document.createElement("p");
    latest.className = "latest";
    latest.textContent = "waiting for the first window…";
    const strip = document.createElement("div");
    strip.className = "strip";
    strip.setAttribute("aria-hidden", "true");
    const alerts = document.createElement("p");
    alerts.className = "alert-count";
    alerts.textContent = "0 alerts";
    article.append(title, latest, strip, alerts);
    container.prepend(article);
    entry = { article, latest, strip, alerts, count: 0, windows: 0 };
    cards.set(stream.session_id, entry);
    refreshEmpty();
    return entry;
  }

  function addWindow(w) {
    const entry = card(w);
    entry.windows += 1;
    const bit = document.createElement("span");
    bit.style.background = w.label ? colour(w.label) : SILENCE;
    bit.title = w.label ? `${w.start_s.toFixed(1)}–${w.end_s.toFixed(1)} s: ${w.label}` : (w.skipped ? "not scored (busy)" : "no speech");
    entry.strip.append(bit);
    while (entry.strip.children.length > 60) entry.strip.firstChild.remove();
    entry.latest.replaceChildren(`window ${w.index} (${w.end_s.toFixed(1)} s): `);
    if (w.label) entry.latest.append(chip(w.label), ` ${Math.round(100 * w.scores[w.label])} %`);
    else entry.latest.append(w.no_speech || w.silent ? "no speech" : "not scored (busy)");
    entry.article.dataset.windows = String(entry.windows);
  }

  fetch("/api/live").then((r) => r.json()).then((state) => {
    for (const stream of state.streams) { card(stream); for (const w of stream.windows) addWindow(w); }
  });
  refreshEmpty();
  const source = new EventSource("/events");
  source.onopen = () => { status.textContent = "Connected: updates arrive as they happen."; };
  source.onerror = () => { status.textContent = "Connection lost: retrying…"; };
  source.addEventListener("stream_started", (m) => card(JSON.parse(m.data)));
  source.addEventListener("window", (m) => addWindow(JSON.parse(m.data)));
  source.addEventListener("alert", (m) => {
    const event = JSON.parse(m.data);
    const entry = card(event);
    entry.count += 1;
    entry.alerts.textContent = `${entry.count} alert(s); latest: ${event.alert.message}`;
  });
  source.addEventListener("stream_ended", (m) => {
    const event = JSON.parse(m.data);
    const entry = cards.get(event.session_id);
    if (entry) { entry.latest.append(" · ended"); entry.article.classList.add("ended"); }
  });
}

// A job's page polls its progress, then shows the result.
function followJob() {
  const el = document.getElementById("job");
  if (!el) return;
  const bar = document.getElementById("job-progress");
  const state = document.getElementById("job-state");
  const percent = document.getElementById("job-percent");
  const eta = document.getElementById("job-eta");
  const poll = async () => {
    const job = await (await fetch(`/api/jobs/${encodeURIComponent(el.dataset.job)}`)).json();
    state.textContent = job.error ? `${job.state}: ${job.error}` : job.state;
    bar.value = job.progress;
    percent.textContent = `${Math.floor(job.progress * 100)} %`;
    eta.textContent = job.state === "running" && job.eta_s > 0 ? `· about ${duration(job.eta_s)} left` : "";
    if (job.state === "succeeded") { location.reload(); return; }
    if (job.state === "failed" || job.state === "cancelled") return;
    setTimeout(poll, 700);
  };
  poll();
}

// Recording: MediaRecorder's WebM/Opus is decoded by the browser and sent as 16-bit WAV,
// a container the server reads.
function recorder() {
  const button = document.getElementById("record");
  if (!button) return;
  const status = document.getElementById("record-status");
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    button.disabled = true;
    status.textContent = "This browser cannot record here: upload a file instead.";
    return;
  }
  let media = null;
  let chunks = [];
  button.addEventListener("click", async () => {
    if (media && media.state === "recording") { media.stop(); return; }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      media = new MediaRecorder(stream);
      chunks = [];
      media.ondataavailable = (e) => chunks.push(e.data);
      media.onstop = async () => {
        stream.getTracks().forEach((t) => t.stop());
        const decoded = await new AudioContext().decodeAudioData(await new Blob(chunks).arrayBuffer());
        const file = new File([wav(decoded)], "recording.wav", { type: "audio/wav" });
        const files = new DataTransfer();
        files.items.add(file);
        document.getElementById("recording").files = files.files;
        button.textContent = "Record again";
        status.textContent = `Recorded ${decoded.duration.toFixed(1)} s: press Analyse.`;
      };
      media.start();
      button.textContent = "Stop recording";
      status.textContent = "Recording…";
    } catch (error) {
      status.textContent = `Cannot record: ${error.message}`;
    }
  });
}

function uploadLimit() {
  // Says at once that a file is over the server's limit (the server refuses it anyway, unread).
  const form = document.getElementById("analyze-form");
  if (!form) return;
  const limit = Number(form.dataset.maxBytes || 0);
  form.addEventListener("submit", (event) => {
    const file = document.getElementById("recording").files[0];
    if (limit && file && file.size > limit) {
      event.preventDefault();
      const status = document.getElementById("record-status");
      status.textContent = `This recording is ${(file.size / 1e6).toFixed(1)} MB; the most this page takes is ${form.dataset.maxMb}.`;
    }
  });
}

function duration(seconds) {
  const s = Math.max(1, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function wav(buffer) {
  const samples = buffer.getChannelData(0);
  const data = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) data.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); data.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE"); text(12, "fmt ");
  data.setUint32(16, 16, true); data.setUint16(20, 1, true); data.setUint16(22, 1, true);
  data.setUint32(24, buffer.sampleRate, true); data.setUint32(28, buffer.sampleRate * 2, true);
  data.setUint16(32, 2, true); data.setUint16(34, 16, true); text(36, "data"); data.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) data.setInt16(44 + i * 2, Math.max(-1, Math.min(1, samples[i])) * 32767, true);
  return data.buffer;
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  for (const el of document.querySelectorAll("[data-timeline]")) timelineChart(el);
  for (const el of document.querySelectorAll("[data-lanes]")) laneChart(el);
  partyFilter();
  for (const el of document.querySelectorAll("[data-buckets]")) trendsChart(el);
  followSession();
  liveMonitor();
  followJob();
  uploadLimit();
  recorder();
});
