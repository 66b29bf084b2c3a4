// web_server.js: serves a folder (build/web/, the gradient lab) over HTTP on 127.0.0.1 only.
// Used by tests/web_test.js, and by `make web-serve`:
//     node tests/web_server.js DIR [PORT]      (PORT 8000 by default; 0: any free port)
"use strict";
const http = require("http");
const fs = require("fs");
const path = require("path");

const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8", ".wasm": "application/wasm", ".png": "image/png",
  ".md": "text/plain; charset=utf-8",
};

// Starts serving root on 127.0.0.1:port; resolves to { server, url } once listening.
function serve(root, port) {
  const base = path.resolve(root);
  const server = http.createServer((req, res) => {
    const name = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const file = path.join(base, name.endsWith("/") ? name + "index.html" : name);
    if (!file.startsWith(base + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { "Content-Type": "text/plain" });
      return res.end("not found\n");
    }
    res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] || "application/octet-stream",
                         "Cache-Control": "no-store" });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () =>
      resolve({ server, url: `http://127.0.0.1:${server.address().port}/` }));
  });
}

module.exports = { serve };

if (require.main === module) {
  const [dir, port = "8000"] = process.argv.slice(2);
  if (!dir || dir === "--help" || !/^\d+$/.test(port)) {
    console.log("usage: node tests/web_server.js DIR [PORT]\n" +
                "Serves DIR on http://127.0.0.1:PORT/ (loopback only) until Ctrl-C.");
    process.exit(dir === "--help" ? 0 : 2);
  }
  if (!fs.existsSync(path.join(dir, "index.html"))) {
    console.error(`web_server.js: ${dir}/index.html is missing: run make web first`);
    process.exit(1);
  }
  serve(dir, Number(port)).then(({ url }) => {
    console.log(`The gradient lab: ${url}  (serving ${dir} on loopback; Ctrl-C stops)`);
  }).catch((e) => {
    console.error(`web_server.js: cannot listen on 127.0.0.1:${port}: ${e.message}` +
                  " (choose another port: make web-serve WEB_PORT=8123)");
    process.exit(1);
  });
}
