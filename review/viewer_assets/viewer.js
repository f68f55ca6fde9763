"use strict";
// The review page's behaviour. Every time here is seconds of the exported MP4s: they all start at
// the same media time (session.json's media_start_s), so one number places both videos, the
// vitals, the markers and the gaps.

const DATA = JSON.parse(document.getElementById("session-data").textContent);
const SPEEDS = [0.25, 0.5, 1, 1.5, 2, 4];
const FAR_S = 0.25; // further apart than this, a follower jumps; closer, it is nudged
const NUDGE = 0.08; // a follower plays this much faster or slower while it catches up

const views = [];
let speedIndex = SPEEDS.indexOf(1);
let dragging = false;

const $ = (id) => document.getElementById(id);
const clamp = (t, lo, hi) => Math.min(hi, Math.max(lo, t));

// --- time as people read it ----------------------------------------------------------------------

function mmss(seconds, digits = 2) {
  const sign = seconds < 0 ? "−" : "";
  // Rounded first, so 59.996 s reads 1:00.00, never 0:60.00.
  const s = Number(Math.abs(seconds).toFixed(digits));
  const m = Math.floor(s / 60);
  const rest = (s - m * 60).toFixed(digits).padStart(digits ? digits + 3 : 2, "0");
  return `${sign}${m}:${rest}`;
}

function wallClock(t) {
  // UTC = UTC of media time zero + media time (the manifest's rule).
  return new Date(DATA.epoch_ms + (DATA.media_start_s + t) * 1000);
}

function pad(n, w = 2) {
  return String(n).padStart(w, "0");
}

function utcText(d) {
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}`;
}

function localText(d) {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// --- the views -----------------------------------------------------------------------------------

for (const cam of DATA.cameras) {
  const box = document.createElement("div");
  box.className = "view";
  box.dataset.camera = cam.name;
  const video = document.createElement("video");
  video.src = cam.file; // beside this page: too large to inline
  video.preload = "auto";
  video.playsInline = true;
  // Sound from the view that recorded it; the others are silent.
  video.muted = !cam.audio;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = cam.name + (cam.audio ? " (sound)" : "");
  const size = document.createElement("button");
  size.type = "button";
  size.className = "size";
  size.textContent = "large / small";
  size.addEventListener("click", () => box.classList.toggle("large"));
  box.append(video, name, size);
  $("views").append(box);
  views.push({ name: cam.name, video, fps: cam.fps, audio: cam.audio, box, firstFrame: cam.first_frame });
}
if (views.length) views[0].box.classList.add("large");

// The master clock is one video: the one with sound, so its audio never skips for a correction.
// The others follow it.
const master = views.find((v) => v.audio) || views[0];
const FRAME_S = master ? 1 / master.fps : 1 / 30;

function now() {
  return master ? master.video.currentTime : 0;
}

function seek(t) {
  t = clamp(t, 0, DATA.duration);
  for (const v of views) v.video.currentTime = t;
  show(t);
}

function playing() {
  return master && !master.video.paused && !master.video.ended;
}

function play() {
  if (!master) return;
  if (master.video.ended || now() >= DATA.duration - FRAME_S) seek(0);
  for (const v of views) v.video.play().catch(() => {}); // a follower past its end stays paused
}

function pause() {
  for (const v of views) v.video.pause();
  // Paused, the views show the same instant exactly, not merely within the drift allowance.
  for (const v of views) if (v !== master) v.video.currentTime = now();
}

function setSpeed(index) {
  speedIndex = clamp(index, 0, SPEEDS.length - 1);
  for (const v of views) v.video.playbackRate = SPEEDS[speedIndex];
  $("speed").textContent = `${SPEEDS[speedIndex]}×`;
}

// Frames of the master view since its first, at its nominal rate.
function frameAt(t) {
  return Math.floor((t - master.firstFrame) / FRAME_S + 1e-6);
}

function stepFrames(n) {
  pause();
  // Counted as the clock line counts them; landing in the middle of a frame, never on its edge,
  // so rounding cannot show its neighbour.
  const frame = frameAt(now()) + n;
  seek(master.firstFrame + (frame + 0.5) * FRAME_S);
}

// Drift correction, every displayed frame: a follower more than FAR_S off jumps to the master;
// one more than half a frame off plays a little faster or slower until it is back.
function keepInStep() {
  const t = now();
  for (const v of views) {
    if (v === master) continue;
    const rate = SPEEDS[speedIndex];
    // Before its own first frame a video holds that frame (the browser will not seek earlier),
    // which is where it should be then.
    const off = v.video.currentTime - Math.max(t, v.firstFrame);
    if (!playing()) {
      if (!v.video.paused) v.video.pause();
      if (Math.abs(off) > FRAME_S / 2 && !v.video.seeking && !master.video.seeking) v.video.currentTime = t;
      v.video.playbackRate = rate;
    } else if (t < v.video.duration) {
      if (Math.abs(off) > FAR_S) {
        if (!v.video.seeking) v.video.currentTime = t;
      } else if (Math.abs(off) > FRAME_S / 2) {
        v.video.playbackRate = rate * (off > 0 ? 1 - NUDGE : 1 + NUDGE);
      } else {
        v.video.playbackRate = rate;
      }
      if (v.video.paused) v.video.play().catch(() => {});
    }
  }
  show(t);
  requestAnimationFrame(keepInStep);
}

// --- the clock line and the cursor ---------------------------------------------------------------

const plots = [];

function show(t) {
  $("t-elapsed").textContent = mmss(t);
  $("t-birth").textContent = DATA.birth === null ? "no birth marked" : `T${t >= DATA.birth ? "+" : ""}${mmss(t - DATA.birth, 1)}`;
  const d = wallClock(t);
  $("t-utc").textContent = utcText(d);
  $("t-local").textContent = localText(d);
  if (master) $("t-frame").textContent = String(frameAt(t));
  $("play").textContent = playing() ? "Pause" : "Play";
  for (const p of plots) p.cursor.style.left = `${p.u.valToPos(t, "x")}px`;
  for (const r of readouts) r.out.textContent = valueAt(r.series, t);
}

// The value each series held at time t: its latest sample at or before t ("--" when that sample
// was invalid, as the monitor showed it).
function valueAt(series, t) {
  let lo = 0, hi = series.t.length - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (series.t[mid] <= t) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  const v = found < 0 ? null : series.v[found];
  return v === null ? "--" : String(Math.round(v * 10) / 10);
}

// One readout per series in the header, in panel order (HR and SpO2 first).
const readouts = [];
for (const panel of DATA.panels) {
  for (const s of panel.series) {
    const span = document.createElement("span");
    span.dataset.series = s.label;
    const out = document.createElement("output");
    span.append(`${s.label} `, out, ` ${panel.unit}`);
    $("values").append(span);
    readouts.push({ series: s, out });
  }
}

// --- the vitals ----------------------------------------------------------------------------------

function fillBetween(u, xs, ys, colour) {
  // A closed shape through canvas points; xs/ys in data units.
  const ctx = u.ctx;
  ctx.save();
  ctx.beginPath();
  xs.forEach((x, i) => {
    const px = u.valToPos(x, "x", true), py = u.valToPos(ys[i], "y", true);
    if (i === 0) ctx.moveTo(px, py);
    else ctx.lineTo(px, py);
  });
  ctx.closePath();
  ctx.fillStyle = colour;
  ctx.fill();
  ctx.restore();
}

function drawUnder(u, panel) {
  const { top, height } = u.bbox;
  const ctx = u.ctx;
  // The integrity check's gaps: media that is missing or did not verify.
  ctx.save();
  ctx.fillStyle = "rgba(120,120,120,0.25)";
  for (const g of DATA.gaps) {
    const a = u.valToPos(g.from, "x", true), b = u.valToPos(g.to, "x", true);
    ctx.fillRect(a, top, Math.max(1, b - a), height);
  }
  ctx.restore();
  if (panel.title === "SpO2" && DATA.band.length > 1) {
    const ts = DATA.band.map((c) => c[0]);
    fillBetween(u, [...ts, ...ts.slice().reverse()],
      [...DATA.band.map((c) => c[1]), ...DATA.band.map((c) => c[2]).reverse()], "rgba(44,160,44,0.18)");
  }
}

function drawOver(u) {
  const { top, height } = u.bbox;
  const ctx = u.ctx;
  ctx.save();
  ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
  const lines = DATA.markers.map((m) => ({ t: m.t, label: m.label, birth: m.label.toLowerCase() === "birth" }));
  if (DATA.started !== null) lines.push({ t: DATA.started, label: "recording started (pre-roll before)", started: true });
  for (const m of lines) {
    const x = u.valToPos(m.t, "x", true);
    ctx.strokeStyle = ctx.fillStyle = m.birth ? "#b2182b" : m.started ? "#888" : "#555";
    ctx.setLineDash(m.started ? [2 * devicePixelRatio, 3 * devicePixelRatio] : [5 * devicePixelRatio, 3 * devicePixelRatio]);
    ctx.lineWidth = (m.birth ? 2 : 1) * devicePixelRatio;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    if (u === plots[0]?.u || plots.length === 0) ctx.fillText(m.label, x + 3 * devicePixelRatio, top + 12 * devicePixelRatio);
  }
  ctx.restore();
}

function seekFromPointer(u, e) {
  const rect = u.over.getBoundingClientRect();
  seek(u.posToVal(e.clientX - rect.left, "x"));
}

function makePlot(panel, last) {
  const box = document.createElement("div");
  box.className = "panel";
  $("plots").append(box);
  // Series of different monitors have their own sample times; join() aligns them on one x,
  // leaving undefined (drawn across) where a series has no sample, null (a break) where it was invalid.
  const data = uPlot.join(panel.series.map((s) => [s.t, s.v]));
  const title = `${panel.title} (${panel.unit})` +
    (panel.title === "SpO2" && DATA.band.length ? `: green band = target, minutes after ${DATA.band_from}` : "");
  const u = new uPlot({
    title,
    width: $("plots").clientWidth || 900,
    height: panel.title === "SpO2" || panel.title === "Heart rate" ? 150 : 110,
    scales: {
      x: { time: false, range: () => [0, Math.max(DATA.duration, 1)] },
      y: panel.range ? { range: () => panel.range } : { auto: true },
    },
    axes: [
      { show: last, values: (u, splits) => splits.map((s) => mmss(s, 0)) },
      { size: 50 },
    ],
    // Dragging seeks here, it does not zoom.
    cursor: { drag: { x: false, y: false }, sync: { key: "vitals" } },
    series: [
      { label: "elapsed", value: (u, v) => (v == null ? "–" : mmss(v)) },
      ...panel.series.map((s) => ({
        label: s.label, stroke: s.colour, width: 1.5, dash: s.dash ? [6, 4] : undefined,
        points: { show: false }, spanGaps: false,
      })),
    ],
    hooks: { drawClear: [(u) => drawUnder(u, panel)], draw: [drawOver] },
  }, data, box);
  const cursor = document.createElement("div");
  cursor.className = "cursor";
  u.over.append(cursor);
  u.over.addEventListener("mousedown", (e) => { dragging = true; seekFromPointer(u, e); });
  u.over.addEventListener("mousemove", (e) => { if (dragging) seekFromPointer(u, e); });
  plots.push({ u, cursor, panel });
}

window.addEventListener("mouseup", () => { dragging = false; });
DATA.panels.forEach((p, i) => makePlot(p, i === DATA.panels.length - 1));
window.addEventListener("resize", () => {
  for (const p of plots) p.u.setSize({ width: $("plots").clientWidth, height: p.u.height });
  show(now());
});

// --- markers, notes, keys ------------------------------------------------------------------------

for (const m of DATA.markers) {
  const li = document.createElement("li");
  if (m.label.toLowerCase() === "birth") li.className = "birth";
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.t = String(m.t);
  // Teams talk of "3:12 after birth": each marker says that too, once a birth was marked.
  const sinceBirth = DATA.birth === null ? "" : ` (T${m.t >= DATA.birth ? "+" : ""}${mmss(m.t - DATA.birth, 0)})`;
  b.textContent = `${mmss(m.t, 1)}  ${m.label}${sinceBirth}`;
  b.addEventListener("click", () => { pause(); seek(m.t); });
  li.append(b);
  $("markers").append(li);
}
if (!DATA.markers.length) $("markers").outerHTML = "<p>No markers.</p>";

function nextMarker(direction) {
  const t = now();
  const times = DATA.markers.map((m) => m.t).sort((a, b) => a - b);
  // Going back from just after a marker passes it, so pressing twice walks back through them.
  const target = direction > 0 ? times.find((m) => m > t + 0.01) : times.filter((m) => m < t - 0.25).pop();
  if (target !== undefined) seek(target);
}

const notes = [
  DATA.band.length
    ? `SpO2 target band: ${DATA.targets.map(([m, lo, hi]) => `${m} min ${lo}–${hi} %`).join(", ")}; minutes after ${DATA.band_from}, linear between them.`
    : "No SpO2 target band in this stretch.",
  `Local time is this computer's zone (${Intl.DateTimeFormat().resolvedOptions().timeZone}).`,
  DATA.started !== null ? `The recording was started ${mmss(DATA.started, 1)} in; before that is the pre-roll.` : null,
  DATA.gaps.length
    ? `Grey on the plots: ${DATA.gaps.length} gap(s) in the verified media (${DATA.gaps.map((g) => `${g.camera} ${mmss(g.from, 1)}–${mmss(g.to, 1)}`).join(", ")}); see report.txt.`
    : "No gaps: every segment verified.",
];
for (const n of notes.filter(Boolean)) {
  const li = document.createElement("li");
  li.textContent = n;
  $("notes").append(li);
}
$("title").textContent = `${DATA.table || ""} · session ${DATA.session}`;

const KEYS = {
  " ": () => (playing() ? pause() : play()),
  ",": () => stepFrames(-1),
  ".": () => stepFrames(1),
  ArrowLeft: () => seek(now() - 5),
  ArrowRight: () => seek(now() + 5),
  "[": () => nextMarker(-1),
  p: () => nextMarker(-1),
  "]": () => nextMarker(1),
  n: () => nextMarker(1),
  "+": () => setSpeed(speedIndex + 1),
  "=": () => setSpeed(speedIndex + 1), // "+" without shift on most keyboards
  "-": () => setSpeed(speedIndex - 1),
};
document.addEventListener("keydown", (e) => {
  const action = KEYS[e.key];
  if (!action || e.ctrlKey || e.metaKey || e.altKey) return;
  e.preventDefault(); // space would scroll the page, arrows would move a focused video
  action();
});
$("play").addEventListener("click", () => (playing() ? pause() : play()));
$("back").addEventListener("click", () => seek(now() - 5));
$("fwd").addEventListener("click", () => seek(now() + 5));
$("prev-frame").addEventListener("click", () => stepFrames(-1));
$("next-frame").addEventListener("click", () => stepFrames(1));
$("prev-marker").addEventListener("click", () => nextMarker(-1));
$("next-marker").addEventListener("click", () => nextMarker(1));
$("slower").addEventListener("click", () => setSpeed(speedIndex - 1));
$("faster").addEventListener("click", () => setSpeed(speedIndex + 1));
// The master's own end ends the others.
if (master) master.video.addEventListener("ended", pause);

// For people debugging the page (and the browser tests): the state, read-only in spirit.
window.viewer = { now, seek, views, master, plots, FRAME_S };
setSpeed(speedIndex);
show(0);
requestAnimationFrame(keepInStep);
