// web_test.js: the gradient lab (build/web/) in a real browser: Debian's chromium, headless,
// driven over the DevTools protocol on a pipe (--remote-debugging-pipe), with Node's standard
// library alone. It serves the folder on 127.0.0.1 and checks that the page loads without
// console errors; that moving the rho slider changes the curve and that every curve equals
// print_native's (the same C code, natively) within 1e-5 relative, while the same comparison
// fails against another seed; that a training run's first 100 losses equal print_native's and
// that the loss falls; that a run that blows up shows "diverged at step N" and no NaN; that
// bad field values get a message; the seed cell's numbers; that the page answers while the
// largest curve is computed (in the worker); and that no request leaves
// loopback (chromium is also told that every other host does not exist). Writes
// DIR/screenshot.png; the last line says "N passed, N failed" (exit status 1 if any failed).
//     node tests/web_test.js DIR PRINT_NATIVE       e.g. build/web build/web-native/print_native
"use strict";
const { spawn, execFileSync } = require("child_process");
const fs = require("fs");
const path = require("path");
const { serve } = require("./web_server.js");

const TOLERANCE = 1e-5;
const CHROMIUM = process.env.CHROMIUM || "chromium";
let passed = 0, failed = 0;

function check(description, ok, detail) {
  if (ok) passed++; else failed++;
  console.log(`${ok ? "ok  " : "FAIL"} ${description}${!ok && detail ? `: ${detail}` : ""}`);
}

// ---- the DevTools protocol over chromium's pipe: NUL-terminated JSON both ways ---------------

class Browser {
  constructor(profile) {
    this.proc = spawn(CHROMIUM, [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-default-apps", "--mute-audio", "--remote-debugging-pipe",
      // no host but loopback resolves: the page must work with the network off
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
      `--user-data-dir=${profile}`, "about:blank",
    ], { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
    this.proc.stderr.on("data", () => {});           // chromium's own chatter
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = [];
    let buffered = "";
    this.proc.stdio[4].on("data", (chunk) => {
      buffered += chunk.toString("utf8");
      let end;
      while ((end = buffered.indexOf("\0")) >= 0) {
        this.dispatch(JSON.parse(buffered.slice(0, end)));
        buffered = buffered.slice(end + 1);
      }
    });
    // chromium missing or gone: every call still waiting fails instead of hanging
    const failAll = (why) => {
      for (const { reject, method } of this.pending.values()) reject(new Error(`${method}: ${why}`));
      this.pending.clear();
    };
    this.proc.on("error", (e) => failAll(`cannot run ${CHROMIUM}: ${e.message}`));
    this.exited = new Promise((resolve) => this.proc.on("exit", (code) => {
      failAll(`${CHROMIUM} exited (${code})`);
      resolve();
    }));
  }

  dispatch(msg) {
    if (msg.id && this.pending.has(msg.id)) {
      const { resolve, reject, method } = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error) reject(new Error(`${method}: ${msg.error.message}`)); else resolve(msg.result);
    } else if (msg.method) {
      for (const listener of this.listeners) listener(msg);
    }
  }

  send(method, params = {}, sessionId) {
    if (this.proc.exitCode !== null || !this.proc.pid)
      return Promise.reject(new Error(`${method}: ${CHROMIUM} is not running`));
    const id = this.nextId++;
    const msg = { id, method, params, ...(sessionId ? { sessionId } : {}) };
    this.proc.stdio[3].write(JSON.stringify(msg) + "\0");
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject, method }));
  }

  on(listener) { this.listeners.push(listener); }

  async close() {
    if (!this.proc.pid) return;    // it never started
    try { await this.send("Browser.close"); } catch (e) { this.proc.kill(); }
    await this.exited;
  }
}

// ---- helpers ---------------------------------------------------------------------------------

const e = (x) => x.toExponential(1);   // a worst difference, for the report
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// print_native's output as rows of numbers.
function native(program, args) {
  return execFileSync(program, args, { encoding: "utf8" }).trim().split("\n")
    .map((line) => line.split(" ").map(Number));
}

// The worst |a - b| / |b| over two equally long lists; Infinity when the lengths differ or a
// value is not finite.
function worstRelative(a, b) {
  if (!a || a.length !== b.length || a.length === 0) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]) || !Number.isFinite(b[i])) return Infinity;
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), 1e-300));
  }
  return worst;
}

// print_native's flags for the page's flow settings s.
const curveFlags = (s) => ["--cell", ["rnn", "lstm", "gru"][s.cell], "--hidden", s.hidden,
  "--steps", s.steps, "--rho", s.rho, "--init", ["rho", "pytorch"][s.init], "--forget-bias",
  s.forgetBias, "--of", ["h", "x"][s.of], "--runs", s.runs, "--seed", s.seed].map(String);

const trainFlags = (s, n) => ["--train", "--cell", ["rnn", "lstm", "gru"][s.cell], "--hidden",
  s.hidden, "--steps", s.steps, "--batch", s.batch, "--optimizer",
  ["sgd", "momentum", "adagrad", "adam"][s.optimizer], "--lr", s.lr, "--clip",
  ["off", "norm", "value"][s.clip], "--clip-at", s.clipAt, "--seed", s.seed,
  "--train-steps", n].map(String);

async function main() {
  const [dir, printNative] = process.argv.slice(2);
  if (!dir || !printNative) {
    console.log("usage: node tests/web_test.js DIR PRINT_NATIVE");
    process.exit(2);
  }
  const { server, url } = await serve(dir, 0);
  const profile = fs.mkdtempSync(path.join(path.dirname(path.resolve(dir)), "web-test-profile-"));
  const browser = new Browser(profile);
  try {
    await run(browser, url, dir, printNative);
  } finally {
    await browser.close();
    server.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

async function run(browser, url, dir, printNative) {
  const errors = [], requests = [];
  const { targetId } = await browser.send("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await browser.send("Target.attachToTarget", { targetId, flatten: true });
  const page = (method, params) => browser.send(method, params, sessionId);
  // the page's console and network, and its worker's (auto-attached)
  const watch = (session) => Promise.all(["Runtime.enable", "Log.enable", "Network.enable"]
    .map((m) => browser.send(m, {}, session)));
  browser.on((msg) => {
    const p = msg.params || {};
    if (msg.method === "Runtime.consoleAPICalled" && (p.type === "error" || p.type === "assert"))
      errors.push(p.args.map((a) => a.value ?? a.description).join(" "));
    else if (msg.method === "Runtime.exceptionThrown")
      errors.push(p.exceptionDetails.exception?.description || p.exceptionDetails.text);
    else if (msg.method === "Log.entryAdded" && p.entry.level === "error")
      errors.push(`${p.entry.text} ${p.entry.url || ""}`);
    else if (msg.method === "Network.requestWillBeSent")
      requests.push(p.request.url);
    else if (msg.method === "Target.attachedToTarget")
      watch(p.sessionId).then(() => browser.send("Runtime.runIfWaitingForDebugger", {}, p.sessionId))
        .catch(() => {});
  });
  await watch(sessionId);
  await page("Page.enable");
  await page("Target.setAutoAttach", { autoAttach: true, waitForDebuggerOnStart: true, flatten: true });
  await page("Emulation.setDeviceMetricsOverride",
             { width: 1480, height: 1500, deviceScaleFactor: 1, mobile: false });
  const evaluate = async (expression) => {
    const r = await page("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error(`${expression}: ${r.exceptionDetails.text}`);
    return r.result.value;
  };
  // Waits until expression is truthy (up to ms); returns its last value.
  const until = async (expression, ms = 20000) => {
    const end = Date.now() + ms;
    let value;
    while (!(value = await evaluate(expression)) && Date.now() < end) await sleep(50);
    return value;
  };

  await page("Page.navigate", { url });
  check("the page loads and starts the engine", await until("window.lab && window.lab.ready"));

  // ---- the gradient-flow curve -------------------------------------------------------------
  const flow = () => evaluate("JSON.stringify(window.lab.flow)").then(JSON.parse);
  const sameAsNative = (f, extra = []) =>
    worstRelative(f.values, native(printNative, [...curveFlags(f.settings), ...extra]).map((r) => r[1]));
  const first = await flow();
  const worst = sameAsNative(first);
  check(`the first curve (rho ${first.settings.rho}) equals print_native's within 1e-5 (${e(worst)})`,
        worst <= TOLERANCE, `worst relative difference ${worst}`);

  await evaluate("document.getElementById('flow-rho').focus()");
  for (const type of ["rawKeyDown", "keyUp"])
    await page("Input.dispatchKeyEvent", { type, key: "ArrowRight", code: "ArrowRight",
                                           windowsVirtualKeyCode: 39 });
  const moved = await until("window.lab.flow.settings.rho !== 0.9 && window.lab.flow.settings.rho", 5000);
  const afterKey = await flow();
  const wKey = sameAsNative(afterKey);
  check(`the arrow key on the rho slider moves rho (to ${moved}), the curve changes and equals ` +
        `print_native's within 1e-5 (${e(wKey)})`, Math.abs(moved - 0.91) < 1e-9 &&
        worstRelative(afterKey.values, first.values) > 1e-3 && wKey <= TOLERANCE);

  const setSlider = async (rho) => {
    await evaluate(`(() => { const r = document.getElementById('flow-rho'); r.value = '${rho}';
                    r.dispatchEvent(new Event('input')); })()`);
    await until(`window.lab.flow.settings.rho === ${rho}`, 5000);
    return flow();
  };
  for (const rho of [0.5, 1.1, 1.5]) {
    const f = await setSlider(rho);
    const w = sameAsNative(f);
    check(`rho ${rho} on the slider: the curve equals print_native's within 1e-5 (${e(w)})`,
          f.settings.rho === rho && w <= TOLERANCE, `worst relative difference ${w}`);
  }
  const atRho15 = await flow();
  const otherSeed = sameAsNative(atRho15, ["--seed", String(atRho15.settings.seed + 1)]);
  check(`the same comparison fails against print_native with another seed (${e(otherSeed)})`,
        !(otherSeed <= TOLERANCE), `worst relative difference only ${otherSeed}`);

  await evaluate(`(() => { const c = document.getElementById('flow-cell'); c.value = '1';
                  c.dispatchEvent(new Event('input'));
                  const o = document.getElementById('flow-of'); o.value = '1';
                  o.dispatchEvent(new Event('input')); })()`);
  await until("window.lab.flow.settings.cell === 1 && window.lab.flow.settings.of === 1", 5000);
  const lstm = await flow();
  const wLstm = sameAsNative(lstm);
  check(`the LSTM's curve of dL/dx equals print_native's within 1e-5 (${e(wLstm)})`, wLstm <= TOLERANCE,
        `worst relative difference ${wLstm}`);

  // ---- bad fields ----------------------------------------------------------------------------
  const setField = (id, value) => evaluate(`(() => { const f = document.getElementById('${id}');
    f.value = ${JSON.stringify(value)}; f.dispatchEvent(new Event('input')); })()`);
  await setField("flow-hidden", "1000");
  const tooBig = await until("document.getElementById('flow-message').textContent", 5000);
  check("hidden = 1000 in the flow panel gets a message, and the field is marked",
        /hidden must be a whole number from 1 to 128, not 1000/.test(tooBig) &&
        await evaluate("document.getElementById('flow-hidden').classList.contains('bad')"), tooBig);
  await setField("flow-hidden", "abc");
  const notNumber = await until("/abc/.test(document.getElementById('flow-message').textContent)", 5000);
  check("hidden = abc gets a message", notNumber);
  await setField("flow-hidden", "4294967346");   // 2^32 + 50: would wrap around to 50
  const wraps = await until("/4294967346/.test(document.getElementById('flow-message').textContent)",
                            5000);
  check("hidden = 2^32 + 50 gets a message (it is not taken for 50)", wraps);
  await setField("flow-hidden", "50");
  await evaluate(`(() => { const c = document.getElementById('flow-cell'); c.value = '0';
                  c.dispatchEvent(new Event('input'));
                  const o = document.getElementById('flow-of'); o.value = '0';
                  o.dispatchEvent(new Event('input')); })()`);
  await setSlider(0.9);
  check("a good value clears the message and the curve is drawn again",
        (await evaluate("document.getElementById('flow-message').textContent")) === "" &&
        (await flow()).settings.hidden === 50);
  await setField("train-lr", "fast");
  await evaluate("document.getElementById('train-start').click()");
  const lrMessage = await until("document.getElementById('train-message').textContent", 5000);
  check("learning rate = fast gets a message and no run starts",
        /learning rate/.test(lrMessage) && (await evaluate("window.lab.train.step")) === 0, lrMessage);
  await setField("train-lr", "0.01");

  // ---- the seed cell -------------------------------------------------------------------------
  const seed = await evaluate("JSON.stringify(window.lab.seed)").then(JSON.parse);
  const nativeSeed = native(printNative, ["--seed-cell", "--seed", String(seed.seed), "--steps",
                                          String(seed.steps)]);
  const pageSeed = seed.result.steps.flat().concat(seed.result.gradW_h, [seed.result.loss]);
  const nativeValues = nativeSeed.slice(0, seed.steps).flatMap((r) => r.slice(1))
    .concat(nativeSeed[seed.steps + 1].slice(1), nativeSeed[seed.steps + 2].slice(1));
  const wSeed = worstRelative(pageSeed, nativeValues);
  check(`the seed cell's a_t, h_t, grads, dL/dW_h and L equal print_native's within 1e-5 (${e(wSeed)})`,
        wSeed <= TOLERANCE, `worst relative difference ${wSeed}`);

  // ---- training ------------------------------------------------------------------------------
  await evaluate("document.getElementById('train-start').click()");
  await until("window.lab.train.step >= 1000", 120000);
  await evaluate("document.getElementById('train-pause').click()");
  await sleep(300);
  const train = await evaluate("JSON.stringify(window.lab.train)").then(JSON.parse);
  const nativeLosses = native(printNative, trainFlags(train.settings, 100)).map((r) => r[1]);
  const wTrain = worstRelative(train.losses.slice(0, 100), nativeLosses);
  check(`the first 100 training losses equal print_native's within 1e-5 (${e(wTrain)})`, wTrain <= TOLERANCE,
        `worst relative difference ${wTrain}`);
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  // fixed steps, so that the run (the same floats every time) gives the same verdict
  const early = mean(train.losses.slice(0, 10)), late = mean(train.losses.slice(950, 1000));
  check(`training lowers the loss (steps 1-10: ${early.toPrecision(3)}, steps 951-1000: ` +
        `${late.toPrecision(3)}, well below 1/6, predicting the mean)`,
        train.losses.length >= 1000 && late < early / 2 && late < 0.1);
  await page("Page.captureScreenshot", { format: "png", captureBeyondViewport: true })
    .then(({ data }) => fs.writeFileSync(path.join(dir, "screenshot.png"), Buffer.from(data, "base64")));
  check("wrote screenshot.png", fs.statSync(path.join(dir, "screenshot.png")).size > 20000);

  await evaluate("document.getElementById('train-reset').click()");
  await setField("train-lr", "3");
  await evaluate(`(() => { for (const [id, v] of [['train-optimizer', '0'], ['train-clip', '0']]) {
                  const f = document.getElementById(id); f.value = v;
                  f.dispatchEvent(new Event('input')); } })()`);
  await evaluate("document.getElementById('train-start').click()");
  const diverged = await until("window.lab.train.divergedAt", 20000);
  const state = await evaluate("document.getElementById('train-state').textContent");
  const blown = await evaluate("JSON.stringify(window.lab.train)").then(JSON.parse);
  const nativeBlown = execFileSync(printNative, trainFlags(blown.settings, 100), { encoding: "utf8" })
    .trim().split("\n");                                                       // steps, then why
  const nativeLine = nativeBlown[nativeBlown.length - 1];
  check(`SGD at lr 3 without clipping shows "${state}", as print_native does`,
        diverged > 0 && state.startsWith(`diverged at step ${diverged}`) && state === nativeLine &&
        nativeBlown.length === diverged && blown.losses.every(Number.isFinite) &&
        !/NaN/.test(await evaluate("document.body.innerText")), `${state} / ${nativeLine}`);
  await setField("train-lr", "0.01");

  // ---- the largest curve, in the worker: the page answers meanwhile --------------------------
  await evaluate(`(() => { const c = document.getElementById('flow-cell'); c.value = '1';
                  c.dispatchEvent(new Event('input')); })()`);
  for (const [id, value] of [["flow-hidden", "128"], ["flow-steps", "300"], ["flow-runs", "10"]])
    await setField(id, value);
  await sleep(300);
  const asked = Date.now();
  await evaluate("document.getElementById('flow-hidden').value");
  const answered = Date.now() - asked;
  const big = await until("window.lab.flow.settings.runs === 10 && window.lab.flow", 120000);
  check(`the page answers in ${answered} ms while the largest LSTM curve is computed`,
        answered < 500 && big && big.values.length === 300 && big.settings.hidden === 128);

  // ---- what the browser saw ------------------------------------------------------------------
  await sleep(200);
  const outside = requests.filter((u) => !u.startsWith(url) && !u.startsWith("data:"));
  check(`every request (${requests.length}) went to ${url}`, requests.length > 0 && outside.length === 0,
        outside.join(", "));
  check("no console errors or exceptions", errors.length === 0, errors.join(" | "));
}

const WATCHDOG_MS = 300000;   // the whole test, at most
setTimeout(() => {
  console.log(`FAIL the test did not finish in ${WATCHDOG_MS / 1000} s`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, WATCHDOG_MS).unref();

main().catch((e) => {
  console.log(`FAIL the test itself failed: ${e.stack || e}`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
