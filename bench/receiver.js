// A fast callback receiver for the benchmarks (Node, so the receiver is not the bottleneck).
// POST anything -> 200 {"ok":true}.
//   - POSTs to a path starting with /lat record their arrival time (ms, sub-ms precision) per x-rotor-job-id.
//   - With a secret set (GET /secret?value=...), every POST carrying x-rotor-signature is verified
//     (HMAC-SHA256 of "<job id>.<timestamp>.<body>", as the API contract says); failures are counted.
// GET /arrivals -> {"count", "verified", "bad", "arrivals": {jobId: ms}}; GET /reset clears; GET /stats omits arrivals.
const http = require("http");
const crypto = require("crypto");

const port = Number(process.argv[2] || 3900);
const now = () => performance.timeOrigin + performance.now();
let arrivals = new Map();
let count = 0, verified = 0, bad = 0;
let secret = null;

function checkSignature(req, body) {
  const sig = req.headers["x-rotor-signature"];
  if (secret === null || sig === undefined) return;
  const mac = crypto.createHmac("sha256", secret);
  mac.update(`${req.headers["x-rotor-job-id"]}.${req.headers["x-rotor-timestamp"]}.`);
  mac.update(body);
  if (`v1,${mac.digest("base64")}` === sig) verified += 1; else bad += 1;
}

function answerGet(req, res) {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/reset") { arrivals = new Map(); count = 0; verified = 0; bad = 0; }
  if (url.pathname === "/secret") secret = url.searchParams.get("value");
  const out = { count, verified, bad };
  if (url.pathname === "/arrivals") out.arrivals = Object.fromEntries(arrivals);
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(out));
}

http
  .createServer((req, res) => {
    if (req.method === "GET") return answerGet(req, res);
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      count += 1;
      checkSignature(req, Buffer.concat(chunks));
      const id = req.headers["x-rotor-job-id"];
      if (id && req.url.startsWith("/lat") && arrivals.size < 200000) arrivals.set(id, now());
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"ok":true}');
    });
  })
  .listen(port, "127.0.0.1", () => console.log(`receiver on ${port}`));
