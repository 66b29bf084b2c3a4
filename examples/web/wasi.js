// wasi.js: loads lab.wasm (the library and examples/web/lab_web.c) with the few WASI imports
// wasi-libc links in (fd_write, fd_seek, fd_close: the lab never prints or opens a file, so
// each says "not supported"), and wraps its entry points (lab_web.h) in plain JS functions.
// Used by the page (app.js) and its training worker (worker.js).
"use strict";

const ENOSYS = 52; // WASI's errno for "function not supported"

// Every import the module asks for, each a function returning ENOSYS.
function wasiImports(module) {
  const imports = {};
  for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
    if (kind !== "function") throw new Error(`lab.wasm imports ${from}.${name}, a ${kind}`);
    imports[from] = imports[from] || {};
    imports[from][name] = () => ENOSYS;
  }
  return imports;
}

// The lab's entry points; results are copied out of the module's memory, whose buffer is
// replaced whenever the library's malloc grows it.
function wrapLab(exports) {
  const mem = () => exports.memory.buffer;
  const text = (ptr) => {
    const bytes = new Uint8Array(mem(), ptr);
    return new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0)));
  };
  const outcome = (status) => ({ ok: status === 0, message: text(exports.lab_message()) });
  return {
    // s: { cell, hidden, steps, rho, init, forgetBias, of, runs, seed } as lab_curve takes them
    curve(s) {
      const r = outcome(exports.lab_curve(s.cell, s.hidden, s.steps, s.rho, s.init, s.forgetBias,
                                          s.of, s.runs, s.seed));
      if (r.ok) r.values = Array.from(new Float64Array(mem(), exports.lab_curve_values(), s.steps));
      return r;
    },
    // s: { cell, hidden, steps, batch, optimizer, lr, clip, clipAt, seed }
    trainStart(s) {
      return outcome(exports.lab_train_start(s.cell, s.hidden, s.steps, s.batch, s.optimizer,
                                             s.lr, s.clip, s.clipAt, s.seed));
    },
    // Up to n steps: { ran, losses, norms, divergedAt, message }
    trainRun(n) {
      const ran = exports.lab_train_run(n);
      const count = Math.max(ran, 0);
      return {
        ran,
        losses: Array.from(new Float32Array(mem(), exports.lab_train_losses(), count)),
        norms: Array.from(new Float32Array(mem(), exports.lab_train_norms(), count)),
        divergedAt: exports.lab_train_diverged_at(),
        message: text(exports.lab_message()),
      };
    },
    trainStop() { exports.lab_train_stop(); },
    // The seed cell: per step [a1, a2, h1, h2, dh1, dh2, da1, da2], then W_h, dL/dW_h and L.
    seed(seed, steps) {
      const r = outcome(exports.lab_seed(seed, steps));
      if (r.ok) {
        const v = Array.from(new Float64Array(mem(), exports.lab_seed_values(), steps * 8 + 9));
        r.steps = [];
        for (let t = 0; t < steps; t++) r.steps.push(v.slice(8 * t, 8 * t + 8));
        r.W_h = v.slice(8 * steps, 8 * steps + 4);
        r.gradW_h = v.slice(8 * steps + 4, 8 * steps + 8);
        r.loss = v[8 * steps + 8];
      }
      return r;
    },
  };
}

// Fetches, compiles and starts lab.wasm (a WASI reactor: _initialize first); resolves to the
// wrapped entry points. bytes: the .wasm's contents, when already at hand (tests in Node).
async function loadLab(url, bytes) {
  const code = bytes || await (await fetch(url)).arrayBuffer();
  const module = await WebAssembly.compile(code);
  const instance = await WebAssembly.instantiate(module, wasiImports(module));
  instance.exports._initialize();
  return wrapLab(instance.exports);
}

if (typeof module !== "undefined") module.exports = { loadLab };
