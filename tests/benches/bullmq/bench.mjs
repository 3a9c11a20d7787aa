// BullMQ's side of tests/benches/jobs_throughput.rs: the same no-op jobs, the same Redis, the same
// concurrency per process, measured the same way (first job's start to last job's end; pickup = enqueue to
// start). Run by the Rust benchmark; each mode prints one JSON line.
//
//   node bench.mjs throughput <redis_url> <jobs> <processes> <concurrency>
//   node bench.mjs pickup <redis_url> <jobs> <gap_ms> <concurrency>
import { fork } from "node:child_process";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";

const QUEUE = "crm-bench";
const PREFIX = "crmbench-bullmq";
const [mode, redisUrl, ...rest] = process.argv.slice(2);

function connection() {
  const url = new URL(redisUrl);
  return {
    host: url.hostname,
    port: Number(url.port || 6379),
    db: Number(url.pathname.slice(1) || 0),
    // Required by BullMQ's workers (blocking commands must not be retried by ioredis).
    maxRetriesPerRequest: null,
  };
}

const jobOptions = { removeOnComplete: true, removeOnFail: true };

async function freshQueue() {
  const queue = new Queue(QUEUE, { connection: connection(), prefix: PREFIX });
  await queue.obliterate({ force: true });
  return queue;
}

function startChildren(count, concurrency) {
  return Array.from({ length: count }, () =>
    fork(new URL(import.meta.url).pathname, ["child", redisUrl, String(concurrency)]),
  );
}

function waitForMessage(child, type) {
  return new Promise((resolve) => {
    const listener = (message) => {
      if (message.type === type) {
        child.off("message", listener);
        resolve(message);
      }
    };
    child.on("message", listener);
  });
}

async function stopChildren(children) {
  const reports = children.map((child) => waitForMessage(child, "report"));
  for (const child of children) child.send({ type: "report" });
  const results = await Promise.all(reports);
  await Promise.all(
    children.map(
      (child) =>
        new Promise((resolve) => {
          child.once("exit", resolve);
          child.send({ type: "stop" });
        }),
    ),
  );
  return results;
}

// Redis's own CPU time so far (user + system), as INFO reports it.
async function redisCpuMs() {
  const client = new Redis(connection());
  const info = await client.info("cpu");
  client.disconnect();
  const field = (name) => Number(info.match(new RegExp(`${name}:([0-9.]+)`))[1]);
  return (field("used_cpu_sys") + field("used_cpu_user")) * 1000;
}

// Resolves once the children have reported `jobs` completions between them.
function completions(children, jobs) {
  let done = 0;
  return new Promise((resolve) => {
    for (const child of children) {
      child.on("message", (message) => {
        if (message.type === "completed") {
          done += message.count;
          if (done >= jobs) resolve(done);
        }
      });
    }
  });
}

async function throughput(jobs, processes, concurrency) {
  const queue = await freshQueue();
  for (let start = 0; start < jobs; start += 1000) {
    const size = Math.min(1000, jobs - start);
    await queue.addBulk(Array.from({ length: size }, () => ({ name: "no-op", data: {}, opts: jobOptions })));
  }
  const redisCpuBefore = await redisCpuMs();
  const children = startChildren(processes, concurrency);
  await completions(children, jobs);
  const redisCpu = (await redisCpuMs()) - redisCpuBefore;
  const reports = await stopChildren(children);
  const first = Math.min(...reports.map((report) => report.first));
  const last = Math.max(...reports.map((report) => report.last));
  const seconds = (last - first) / 1000;
  const workersCpu = reports.reduce((sum, report) => sum + report.cpu_ms, 0);
  console.log(
    JSON.stringify({ jobs, seconds, jobs_per_s: jobs / seconds, workers_cpu_ms: workersCpu, redis_cpu_ms: redisCpu }),
  );
  await queue.obliterate({ force: true });
  await queue.close();
}

async function pickup(jobs, gapMs, concurrency) {
  const queue = await freshQueue();
  const [child] = startChildren(1, concurrency);
  const completed = completions([child], jobs);
  await waitForMessage(child, "ready");
  // Let the worker settle into its blocking wait, as ours does after "crm-worker ready".
  await new Promise((resolve) => setTimeout(resolve, 1000));
  for (let i = 0; i < jobs; i++) {
    await queue.add("no-op", {}, jobOptions);
    await new Promise((resolve) => setTimeout(resolve, gapMs));
  }
  await completed;
  const [report] = await stopChildren([child]);
  console.log(JSON.stringify({ latencies_ms: report.latencies }));
  await queue.obliterate({ force: true });
  await queue.close();
}

// One worker process: runs no-op jobs, reports how many completed (every 50 ms) and, when asked, when the
// first started, when the last ended and each job's enqueue-to-start latency.
async function child(concurrency) {
  let first = Infinity;
  let last = 0;
  let unreported = 0;
  const latencies = [];
  const worker = new Worker(
    QUEUE,
    async (job) => {
      const now = Date.now();
      if (now < first) first = now;
      latencies.push(job.processedOn - job.timestamp);
    },
    { connection: connection(), prefix: PREFIX, concurrency, autorun: false },
  );
  worker.on("completed", () => {
    last = Date.now();
    unreported += 1;
  });
  const flush = () => {
    if (unreported > 0) {
      process.send({ type: "completed", count: unreported });
      unreported = 0;
    }
  };
  const ticker = setInterval(flush, 50);
  process.on("message", async (message) => {
    if (message.type === "flush") flush();
    if (message.type === "report") {
      flush();
      const cpu = process.cpuUsage();
      process.send({ type: "report", first, last, latencies, cpu_ms: (cpu.user + cpu.system) / 1000 });
    }
    if (message.type === "stop") {
      clearInterval(ticker);
      await worker.close();
      process.exit(0);
    }
  });
  worker.run();
  await worker.waitUntilReady();
  process.send({ type: "ready" });
}

const numbers = rest.map(Number);
if (mode === "throughput") await throughput(...numbers);
else if (mode === "pickup") await pickup(...numbers);
else if (mode === "child") await child(numbers[0]);
else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
if (mode !== "child") process.exit(0);
