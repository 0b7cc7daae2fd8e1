// The BullMQ side of bench/compare.py: the same delivery workload rotor-lite runs.
//   node bullmq_worker.js REDIS_PORT RECEIVER_URL JOBS CONCURRENCY SECRET
// 1. empties the queue, adds JOBS jobs with addBulk (1,000 per call), each with the bench payload;
// 2. starts a Worker with CONCURRENCY that POSTs each job's data as JSON to RECEIVER_URL, signed
//    exactly as rotor-lite signs callbacks (so both do the same work), and completes the job with
//    the receiver's JSON answer (a non-2xx answer fails the attempt: 3 attempts, exponential backoff);
// 3. prints {"enqueue_s", "deliver_s", "rate"}: deliver_s runs from the worker's start (all jobs
//    enqueued) to the last "completed" event.
// Needs bullmq and ioredis on NODE_PATH (compare.py installs them into bench/.work/).
const http = require("http");
const crypto = require("crypto");
const { Queue, Worker } = require("bullmq");

const [redisPort, receiverUrl, jobsArg, concurrencyArg, secret] = process.argv.slice(2);
const JOBS = Number(jobsArg);
const CONCURRENCY = Number(concurrencyArg);
const PAYLOAD = { contactId: "cid_123", campaignId: "camp_456", step: 1 };
const QUEUE = "bench";
const connection = { host: "127.0.0.1", port: Number(redisPort), maxRetriesPerRequest: null };
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const target = new URL(receiverUrl);

function sign(jobId, timestamp, body) {
  const mac = crypto.createHmac("sha256", secret);
  mac.update(`${jobId}.${timestamp}.`);
  mac.update(body);
  return `v1,${mac.digest("base64")}`;
}

function deliver(job) {
  const body = Buffer.from(JSON.stringify(job.data));
  const timestamp = Math.floor(Date.now() / 1000);
  const headers = {
    "content-type": "application/json",
    "content-length": body.length,
    "user-agent": "bullmq-bench",
    "x-rotor-job-id": String(job.id),
    "x-rotor-queue": QUEUE,
    "x-rotor-attempt": String(job.attemptsMade + 1),
    "x-rotor-timestamp": String(timestamp),
    "x-rotor-signature": sign(String(job.id), timestamp, body),
  };
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, method: "POST", headers, agent, timeout: 30000 },
      (res) => {
        const chunks = [];
        res.on("data", (chunk) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode >= 200 && res.statusCode < 300) resolve(text ? JSON.parse(text) : null);
          else reject(new Error(`HTTP ${res.statusCode}`));
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(body);
  });
}

async function enqueueAll(queue) {
  const opts = { attempts: 3, backoff: { type: "exponential", delay: 2000 } };
  for (let start = 0; start < JOBS; start += 1000) {
    const count = Math.min(1000, JOBS - start);
    await queue.addBulk(Array.from({ length: count }, () => ({ name: "job", data: PAYLOAD, opts })));
  }
}

function runWorker() {
  return new Promise((resolve, reject) => {
    let completed = 0;
    const worker = new Worker(QUEUE, deliver, { connection, concurrency: CONCURRENCY, autorun: false });
    worker.on("completed", () => {
      completed += 1;
      if (completed === JOBS) resolve(worker);
    });
    worker.on("failed", (job, err) => {
      if (job && job.attemptsMade >= 3) reject(new Error(`job ${job.id} failed: ${err.message}`));
    });
    worker.on("error", reject);
    worker.run().catch(reject);
  });
}

async function main() {
  const queue = new Queue(QUEUE, { connection });
  await queue.obliterate({ force: true });
  const enqueueStarted = performance.now();
  await enqueueAll(queue);
  const enqueueSeconds = (performance.now() - enqueueStarted) / 1000;
  const started = performance.now();
  const worker = await runWorker();
  const deliverSeconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ enqueue_s: enqueueSeconds, deliver_s: deliverSeconds, rate: JOBS / deliverSeconds }));
  await worker.close();
  await queue.close();
  agent.destroy();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
