// app.js: the gradient lab's main thread: reads the fields, calls the engine (lab.wasm through
// wasi.js) for the seed cell, hands the gradient-flow curve and training to worker.js, and
// draws the charts on canvases. window.lab exposes what the page shows, for tests/web_test.js.
"use strict";

const $ = (id) => document.getElementById(id);
const lab = { ready: false, flow: null, train: { losses: [], norms: [], step: 0 }, seed: null };
window.lab = lab;

// ---- fields ----------------------------------------------------------------------------------

class FieldError extends Error {}

// The number in input id (a whole one when whole); a FieldError naming it when it is none.
// Ranges are checked by the engine (lab_web.c), whose message names the setting.
function numberIn(id, name, whole) {
  const field = $(id), text = field.value.trim(), value = Number(text);
  // a whole number must fit the engine's int: WebAssembly would wrap a larger one around
  if (text === "" || !Number.isFinite(value) ||
      (whole && !(Number.isInteger(value) && Math.abs(value) <= 2147483647))) {
    field.classList.add("bad");
    const kind = whole ? "a whole number (of at most 10 digits)" : "a number";
    throw new FieldError(`${name}: "${field.value}" is not ${kind}`);
  }
  return value;
}
const choiceIn = (id) => Number($(id).value);

// Shows message in the panel's message line (empty: clears it) and marks the field it names.
function showMessage(panel, message, fields) {
  $(`${panel}-message`).textContent = message;
  for (const [name, id] of Object.entries(fields))
    $(id).classList.toggle("bad", message.startsWith(name + " ") || message.startsWith(name + ":"));
}

// ---- charts ----------------------------------------------------------------------------------

const COLORS = ["#1f5fbf", "#d9480f", "#2b8a3e", "#7048e8"];

// Draws series [{ label, points: [[x, y], ...], color, dash }] on canvas, y on a log axis when
// log (points with y <= 0, NaN or Inf are left out), with a title and axis labels.
function drawChart(canvas, { title, xLabel, yLabel, log, series }) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  const box = { left: 66, right: W - 14, top: 26, bottom: H - 40 };
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, W, H);
  const shown = (y) => Number.isFinite(y) && (!log || y > 0);
  const pts = series.flatMap((s) => s.points.filter(([, y]) => shown(y)));
  ctx.fillStyle = "#1d2330";
  ctx.font = "bold 14px system-ui, sans-serif";
  ctx.fillText(title, box.left, 17);
  if (pts.length === 0) return;
  const xMax = Math.max(1, ...pts.map(([x]) => x)), xMin = Math.min(0, ...pts.map(([x]) => x));
  let yLo = Math.min(...pts.map(([, y]) => y)), yHi = Math.max(...pts.map(([, y]) => y));
  if (log) {
    yLo = Math.floor(Math.log10(yLo));
    yHi = Math.max(Math.ceil(Math.log10(yHi)), yLo + 1);
  } else {
    yLo = Math.min(0, yLo);
    yHi = yHi > yLo ? yHi * 1.05 : yLo + 1;
  }
  const X = (x) => box.left + (x - xMin) / (xMax - xMin) * (box.right - box.left);
  const Y = (y) => box.bottom -
    ((log ? Math.log10(y) : y) - yLo) / (yHi - yLo) * (box.bottom - box.top);
  drawAxes(ctx, box, { xMin, xMax, yLo, yHi, log, X, Y, xLabel, yLabel });
  series.forEach((s, i) => drawLine(ctx, s, s.color || COLORS[i % COLORS.length], shown, X, Y));
  drawLegend(ctx, box, series);
}

function drawAxes(ctx, box, { xMin, xMax, yLo, yHi, log, X, Y, xLabel, yLabel }) {
  ctx.strokeStyle = "#9aa1ad";
  ctx.lineWidth = 1;
  ctx.strokeRect(box.left, box.top, box.right - box.left, box.bottom - box.top);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#3d4557";
  ctx.textAlign = "right";
  const ySteps = log ? Math.ceil((yHi - yLo) / 8) : (yHi - yLo) / 5;   // at most 8 decades shown
  for (let v = yLo; v <= yHi + 1e-9; v += ySteps) {
    const y = Y(log ? 10 ** v : v);
    ctx.fillText(log ? `1e${v}` : niceNumber(v), box.left - 5, y + 4);
    gridLine(ctx, box.left, y, box.right, y);
  }
  ctx.textAlign = "center";
  const xStep = niceStep((xMax - xMin) / 6);
  for (let v = Math.ceil(xMin / xStep) * xStep; v <= xMax; v += xStep) {
    ctx.fillText(niceNumber(v), X(v), box.bottom + 15);
    gridLine(ctx, X(v), box.top, X(v), box.bottom);
  }
  ctx.fillText(xLabel, (box.left + box.right) / 2, box.bottom + 32);
  ctx.save();
  ctx.translate(14, (box.top + box.bottom) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(yLabel, 0, 0);
  ctx.restore();
  ctx.textAlign = "left";
}

function gridLine(ctx, x0, y0, x1, y1) {
  ctx.strokeStyle = "#eceef2";
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}

const niceStep = (raw) => {
  const p = 10 ** Math.floor(Math.log10(raw || 1)), f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
};
const niceNumber = (v) => (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3)
  ? v.toExponential(1) : String(Number(v.toPrecision(3))));

// One series as a line, broken where a point is not shown.
function drawLine(ctx, s, color, shown, X, Y) {
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.setLineDash(s.dash ? [6, 5] : []);
  ctx.beginPath();
  let pen = false;
  for (const [x, y] of s.points) {
    if (!shown(y)) { pen = false; continue; }
    if (pen) ctx.lineTo(X(x), Y(y)); else ctx.moveTo(X(x), Y(y));
    pen = true;
  }
  ctx.stroke();
  ctx.setLineDash([]);
}

function drawLegend(ctx, box, series) {
  ctx.font = "12px system-ui, sans-serif";
  series.forEach((s, i) => {
    const y = box.top + 14 + 16 * i, x = box.right - 190;
    ctx.strokeStyle = s.color || COLORS[i % COLORS.length];
    ctx.setLineDash(s.dash ? [6, 5] : []);
    ctx.beginPath();
    ctx.moveTo(x, y - 4);
    ctx.lineTo(x + 22, y - 4);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#1d2330";
    ctx.fillText(s.label, x + 28, y);
  });
}

// ---- gradient flow ---------------------------------------------------------------------------

const FLOW_FIELDS = { hidden: "flow-hidden", T: "flow-steps", "forget bias": "flow-forget",
                      runs: "flow-runs", seed: "flow-seed" };

function flowSettings() {
  return {
    cell: choiceIn("flow-cell"), hidden: numberIn("flow-hidden", "hidden", true),
    steps: numberIn("flow-steps", "T", true), rho: Number($("flow-rho").value),
    init: choiceIn("flow-init"), forgetBias: numberIn("flow-forget", "forget bias", false),
    of: choiceIn("flow-of"), runs: numberIn("flow-runs", "runs", true),
    seed: numberIn("flow-seed", "seed", true),
  };
}

// The curve is computed in worker.js (a large one takes seconds): one request at a time, and
// while one is out only the latest settings wait for their turn.
let flowBusy = false, flowWaiting = null, firstCurve;
const firstCurveDrawn = new Promise((resolve) => { firstCurve = resolve; });

function requestFlow() {
  const rnn = choiceIn("flow-cell") === 0, rhoQ = rnn && choiceIn("flow-init") === 0;
  $("flow-rho").disabled = !rhoQ;
  $("flow-forget").disabled = choiceIn("flow-cell") !== 1;
  $("flow-rho-value").textContent = Number($("flow-rho").value).toFixed(2);
  let s;
  try { s = flowSettings(); } catch (e) { return showMessage("flow", e.message, FLOW_FIELDS); }
  if (flowBusy) {
    flowWaiting = s;
  } else {
    flowBusy = true;
    worker.postMessage({ type: "curve", settings: s });
  }
}

function onCurve({ settings: s, result }) {
  flowBusy = false;
  if (flowWaiting) {
    flowBusy = true;
    worker.postMessage({ type: "curve", settings: flowWaiting });
    flowWaiting = null;
  }
  showMessage("flow", result.message, FLOW_FIELDS);
  if (!result.ok) return;
  lab.flow = { settings: s, values: result.values };
  const rhoQ = s.cell === 0 && s.init === 0;
  const of = s.of === 0 ? "h" : "x", cell = ["rnn", "lstm", "gru"][s.cell];
  const series = [{ label: `${cell}${rhoQ ? `, rho = ${s.rho.toFixed(2)}` : ""}`,
                    points: result.values.map((v, k) => [k, v]) }];
  if (rhoQ && s.of === 0)
    series.push({ label: "bound rho^k", dash: true, color: "#868e96",
                  points: result.values.map((_, k) => [k, s.rho ** k]) });
  drawChart($("flow-chart"), {
    title: `||dL/d${of}_(T-k)|| / ||dL/d${of}_T||, T = ${s.steps}, hidden ${s.hidden}`,
    xLabel: "k, steps back from T", yLabel: "gradient norm ratio (log)", log: true, series,
  });
  firstCurve();
}

// ---- training (in worker.js) -----------------------------------------------------------------

const TRAIN_FIELDS = { hidden: "train-hidden", T: "train-steps", batch: "train-batch",
                       "learning rate": "train-lr", "clip threshold": "train-clip-at",
                       seed: "train-seed" };

function trainSettings() {
  return {
    cell: choiceIn("train-cell"), hidden: numberIn("train-hidden", "hidden", true),
    steps: numberIn("train-steps", "T", true), batch: numberIn("train-batch", "batch", true),
    optimizer: choiceIn("train-optimizer"), lr: numberIn("train-lr", "learning rate", false),
    clip: choiceIn("train-clip"), clipAt: numberIn("train-clip-at", "clip threshold", false),
    seed: numberIn("train-seed", "seed", true),
  };
}

let worker, trainState = "idle";   // idle, running, paused, ended
let trainRun = 0;                  // the run the worker's messages must belong to
let trainDrawPending = false;

function setTrainState(state, text, diverged) {
  trainState = state;
  $("train-state").textContent = text;
  $("train-state").classList.toggle("diverged", Boolean(diverged));
  $("train-pause").disabled = state !== "running";
  $("train-start").textContent = state === "paused" ? "Resume" : "Start";
  $("train-start").disabled = state === "running" || state === "ended";
}

function drawTraining() {
  trainDrawPending = false;
  const t = lab.train;
  const points = (values) => values.map((v, i) => [i + 1, v]);   // steps count from 1
  drawChart($("train-loss"), {
    title: "loss (MSE) per step", xLabel: "step", yLabel: "loss (log)", log: true,
    series: [{ label: "loss", points: points(t.losses) },
             { label: "predict the mean: 1/6", dash: true, color: "#868e96",
               points: [[1, 1 / 6], [Math.max(2, t.losses.length), 1 / 6]] }],
  });
  drawChart($("train-norm"), {
    title: "gradient norm per step, before clipping", xLabel: "step", yLabel: "norm (log)",
    log: true, series: [{ label: "||grad||", color: COLORS[1], points: points(t.norms) }],
  });
}

function onWorkerMessage({ data }) {
  const t = lab.train;
  if (data.type === "curve") {
    onCurve(data);
  } else if (data.type === "failed") {
    $("status").textContent = `The worker's ${data.message}`;
  } else if (data.run !== trainRun) {
    return;                        // from a run already reset or replaced
  } else if (data.type === "steps") {
    t.losses.push(...data.losses);
    t.norms.push(...data.norms);
    t.step = t.losses.length;
    const recent = t.losses.slice(-50), mean = recent.reduce((a, b) => a + b, 0) / recent.length;
    const text = `step ${t.step}: loss ${mean.toPrecision(4)} (mean of the last ${recent.length})`;
    if (trainState === "running") setTrainState("running", text);
    if (!trainDrawPending) { trainDrawPending = true; requestAnimationFrame(drawTraining); }
  } else if (data.type === "diverged") {
    t.divergedAt = data.step;
    setTrainState("ended", data.message, true);
  } else if (data.type === "done") {
    setTrainState("ended", `stopped at step ${t.step}, the cap; Reset to start again`);
  } else if (data.type === "error") {
    showMessage("train", data.message, TRAIN_FIELDS);
    setTrainState("idle", "Not started.");
  }
}

function startTraining() {
  if (trainState === "paused") {
    worker.postMessage({ type: "resume" });
    return setTrainState("running", $("train-state").textContent);
  }
  let s;
  try { s = trainSettings(); } catch (e) { return showMessage("train", e.message, TRAIN_FIELDS); }
  showMessage("train", "", TRAIN_FIELDS);
  lab.train = { losses: [], norms: [], step: 0, settings: s };
  worker.postMessage({ type: "start", settings: s, run: ++trainRun });
  setTrainState("running", "starting");
}

function resetTraining() {
  worker.postMessage({ type: "reset" });
  trainRun++;
  lab.train = { losses: [], norms: [], step: 0 };
  setTrainState("idle", "Not started.");
  drawTraining();
}

// ---- the seed cell ---------------------------------------------------------------------------

const SEED_FIELDS = { seed: "seed-seed", T: "seed-steps" };
const fmt5 = (v) => (v + 0).toPrecision(5);   // seed_cell's 5 significant digits (-0 as 0)

function updateSeed(engine) {
  let seed, steps;
  try {
    seed = numberIn("seed-seed", "seed", true);
    steps = numberIn("seed-steps", "T", true);
  } catch (e) { return showMessage("seed", e.message, SEED_FIELDS); }
  const r = engine.seed(seed, steps);
  showMessage("seed", r.message, SEED_FIELDS);
  if (!r.ok) return;
  lab.seed = { seed, steps, result: r };
  $("seed-forward").textContent = r.steps.map((v, t) =>
    `Time step ${t + 1}: h_t = [${v[2].toFixed(4)}, ${v[3].toFixed(4)}]`).join("\n");
  const head = "<tr><th>t</th><th>a_t</th><th>h_t</th><th>dL/dh_t</th><th>dL/da_t</th></tr>";
  const rows = [];
  for (let t = steps; t >= 1; t--) {
    const v = r.steps[t - 1];
    for (let i = 0; i < 2; i++)
      rows.push(`<tr><td>${i === 0 ? t : ""}</td>${[v[i], v[2 + i], v[4 + i], v[6 + i]]
        .map((x) => `<td>${fmt5(x)}</td>`).join("")}</tr>`);
  }
  $("seed-table").innerHTML = head + rows.join("");
  const m = (a) => `[[${fmt5(a[0])}, ${fmt5(a[1])}], [${fmt5(a[2])}, ${fmt5(a[3])}]]`;
  $("seed-grad").textContent = `W_h     = ${m(r.W_h)}\ndL/dW_h = ${m(r.gradW_h)}\n` +
    `L = mse(h_${steps}, [0.5, -0.5]) = ${r.loss.toPrecision(6)}`;
}

// ---- start -----------------------------------------------------------------------------------

async function start() {
  const engine = await loadLab("lab.wasm");
  // fn(engine) at the next frame, once however many events come before it
  const redraw = (fn) => {
    let queued = false;
    return () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => { queued = false; fn(engine); });
    };
  };
  const flow = redraw(requestFlow), seed = redraw(updateSeed);
  for (const el of document.querySelectorAll("#flow input, #flow select"))
    el.addEventListener("input", flow);
  for (const el of document.querySelectorAll("#seed input")) el.addEventListener("input", seed);
  for (const el of document.querySelectorAll("#train input"))
    el.addEventListener("input", () => el.classList.remove("bad"));
  worker = new Worker("worker.js");
  worker.onmessage = onWorkerMessage;
  worker.onerror = (e) => showMessage("train", `the training worker failed: ${e.message}`, {});
  $("train-start").onclick = startTraining;
  $("train-pause").onclick = () => {
    worker.postMessage({ type: "pause" });
    setTrainState("paused", `paused at step ${lab.train.step} (for new settings: Reset, Start)`);
  };
  $("train-reset").onclick = resetTraining;
  setTrainState("idle", "Not started.");
  requestFlow();
  updateSeed(engine);
  drawTraining();
  await firstCurveDrawn;
  $("status").textContent = "Engine loaded.";
  lab.ready = true;
}

start().catch((e) => { $("status").textContent = `The engine failed to load: ${e.message}`; });
