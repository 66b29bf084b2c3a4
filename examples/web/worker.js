// worker.js: the page's long computations, in a Web Worker so that the page never freezes:
// the gradient-flow curve on request, and training: lab.wasm's training steps in slices of
// about 30 ms, posting each slice's losses and gradient norms, until paused, reset, diverged,
// or at MAX_STEPS. A curve asked for during training is computed between two slices.
"use strict";
importScripts("wasi.js");

const SLICE_MS = 30;
const MAX_STEPS = 20000;          // the cap on one run's length
let engine = null, running = false, step = 0, queued = [], timer = null;
let run = 0;                      // the page's number for the run, sent back with its messages

// Runs steps for about SLICE_MS and posts them; then again, unless stopped.
function slice() {
  if (!running) return;
  const losses = [], norms = [], end = performance.now() + SLICE_MS;
  let r = null;
  while (performance.now() < end && step < MAX_STEPS) {
    r = engine.trainRun(1);
    losses.push(...r.losses);
    norms.push(...r.norms);
    step += Math.max(r.ran, 0);
    if (r.ran !== 1) break;
  }
  postMessage({ type: "steps", run, losses, norms });
  if (r && r.ran !== 1) {
    running = false;
    postMessage(r.divergedAt ? { type: "diverged", run, step: r.divergedAt, message: r.message }
                             : { type: "error", run, message: r.message });
  } else if (step >= MAX_STEPS) {
    running = false;
    postMessage({ type: "done", run });
  } else {
    timer = setTimeout(slice, 0);   // lets pause and reset in between
  }
}

// Stops the run's loop: no slice is left pending.
function halt() {
  running = false;
  clearTimeout(timer);
}

function handle(msg) {
  if (msg.type === "curve") {
    postMessage({ type: "curve", settings: msg.settings, result: engine.curve(msg.settings) });
  } else if (msg.type === "start") {
    halt();
    run = msg.run;
    const r = engine.trainStart(msg.settings);
    if (!r.ok) return postMessage({ type: "error", run, message: r.message });
    step = 0;
    running = true;
    slice();
  } else if (msg.type === "pause") {
    halt();
  } else if (msg.type === "resume" && !running) {
    running = true;
    slice();
  } else if (msg.type === "reset") {
    halt();
    engine.trainStop();
  }
}

onmessage = ({ data }) => (engine ? handle(data) : queued.push(data));

loadLab("lab.wasm").then((lab) => {
  engine = lab;
  queued.forEach(handle);
  queued = [];
}).catch((e) => postMessage({ type: "failed",
                               message: `the engine failed to load: ${e.message}` }));
