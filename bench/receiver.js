// A fast callback receiver for the benchmarks (Node, so the receiver is not the bottleneck).
// POST anything -> 200 {"ok":true}; records the arrival time (ms, sub-ms precision) per x-rotor-job-id.
// GET /arrivals -> {"count": n, "arrivals": {jobId: ms}}; GET /reset clears.
const http = require("http");
const port = Number(process.argv[2] || 3900);
let arrivals = new Map();
let count = 0;
const now = () => performance.timeOrigin + performance.now();
http
  .createServer((req, res) => {
    if (req.method === "GET") {
      if (req.url === "/reset") { arrivals = new Map(); count = 0; }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ count, arrivals: Object.fromEntries(arrivals) }));
      return;
    }
    const id = req.headers["x-rotor-job-id"];
    req.on("data", () => {});
    req.on("end", () => {
      count += 1;
      if (id && arrivals.size < 100000) arrivals.set(id, now());
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"ok":true}');
    });
  })
  .listen(port, "127.0.0.1", () => console.log(`receiver on ${port}`));
