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

function chartWidth(el) { return Math.max(280, el.clientWidth || 600); }

function timelineChart(el) {
  const data = JSON.parse(el.dataset.timeline);
  const labels = Object.keys(data.series);
  if (!data.x.length) { el.textContent = "Nothing scored yet."; return; }
  const opts = {
    width: chartWidth(el), height: 300,
    scales: { x: { time: false }, y: { range: [0, 1] } },
    axes: [{ label: "seconds" }, { label: "score" }],
    series: [{ label: "time (s)" }, ...labels.map((l) => ({ label: l, stroke: colour(l), width: 2, spanGaps: false }))],
  };
  const plot = new uPlot(opts, [data.x, ...labels.map((l) => data.series[l])], el);
  legendCaption(plot, "Scores at the moment under the pointer");
  new ResizeObserver(() => plot.setSize({ width: chartWidth(el), height: 300 })).observe(el);
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

// A running session's page appends its windows as they are scored.
function followSession() {
  const info = document.getElementById("session-live");
  if (!info) return;
  const { session, running, labels } = JSON.parse(info.textContent);
  if (!running) return;
  const body = document.querySelector("#windows tbody");
  const source = new EventSource(`/events?session=${encodeURIComponent(session)}`);
  source.addEventListener("window", (message) => {
    const w = JSON.parse(message.data);
    const row = document.createElement("tr");
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
    body.append(row);
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
      status.textContent = `This recording is ${(file.size / 1048576).toFixed(0)} MB; the most this page takes is ${form.dataset.maxMb}.`;
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
  for (const el of document.querySelectorAll("[data-buckets]")) trendsChart(el);
  followSession();
  liveMonitor();
  followJob();
  uploadLimit();
  recorder();
});
