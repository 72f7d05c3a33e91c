// The fan-out benchmark's subscribers in one Node process (benchmarks/fanout.py --client node):
// `count` graphql-transport-ws websockets to `url`, each subscribed to `document`, stamping
// every message's receipt on CLOCK_MONOTONIC, the clock of Python's time.monotonic() (libuv's
// hrtime reads CLOCK_MONOTONIC on Linux). Checked on the benchmark machine (Linux, node 20):
// Python read time.monotonic(), started `node -e` printing process.hrtime.bigint() / 1e9, read
// time.monotonic() again when it exited; 20 times out of 20 node's reading fell inside
// Python's bracket (e.g. 5380.6667 <= 5380.8058 <= 5380.8125 s, brackets <= 0.16 s), so one
// clock. Its CPU per message is 0.4 to 0.7 of the Python client's here (1,000 subscribers at
// 50 ev/s: 11-28 us against 17-53 us), which matters where clients and server share two cores.
//
//   node fanout_client.mjs URL COUNT DOCUMENT OUTFILE
//
// Commands come on stdin, one per line, each answered with one JSON line on stdout:
//   status | threshold N (count receipts of positions above N from now) | stop
// On stop it closes its sockets and writes OUTFILE: uint32 subscribers, then for each uint32 n,
// n int64 positions and n float64 receipt times (seconds), little-endian.

import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import WebSocket from "ws";

const [url, countText, document, outfile] = process.argv.slice(2);
const count = Number(countText);
const INIT = '{"type":"connection_init"}';
const PONG = '{"type":"pong"}';
const SUBSCRIBE = JSON.stringify({ id: "1", type: "subscribe", payload: { query: document } });
const POSITION = /"position":\s*"?(\d+)/;
const HANDSHAKES = 32; // at once, as the Python client's semaphore
const DEFLATE = process.env.FANOUT_DEFLATE === "1"; // offer permessage-deflate (--deflate)

const positions = Array.from({ length: count }, () => []);
const times = Array.from({ length: count }, () => []);
const sockets = [];
const counters = {
  connected: 0, live: 0, counted: 0, fell_behind: 0, completed: 0, failed: 0, closed: 0,
  other: 0, problem: "",
};
let threshold = Number.MAX_SAFE_INTEGER;
let stopping = false;
let next = 0;
let opening = 0;

const now = () => Number(process.hrtime.bigint()) / 1e9;

function note(problem) {
  if (!counters.problem) counters.problem = String(problem).slice(0, 300);
}

function openMore() {
  while (opening < HANDSHAKES && next < count && !stopping) {
    opening += 1;
    open(next);
    next += 1;
  }
}

function open(i) {
  const ws = new WebSocket(url, "graphql-transport-ws", { perMessageDeflate: DEFLATE });
  sockets.push(ws);
  let acknowledged = false;
  let errored = false; // counted as failed, not as closed too (as the Python client)
  let handshaking = true;
  const handshakeDone = () => {
    if (!handshaking) return;
    handshaking = false;
    opening -= 1;
    openMore();
  };
  ws.on("open", () => ws.send(INIT));
  ws.on("message", (data) => {
    const at = now();
    const text = data.toString();
    if (!acknowledged) {
      if (!text.includes("connection_ack")) {
        errored = true;
        counters.failed += 1;
        note(`no connection_ack: ${text}`);
        ws.terminate();
        return;
      }
      acknowledged = true;
      ws.send(SUBSCRIBE);
      counters.connected += 1;
      handshakeDone();
      return;
    }
    const found = POSITION.exec(text);
    if (found !== null) {
      const position = Number(found[1]);
      if (positions[i].length === 0) counters.live += 1;
      positions[i].push(position);
      times[i].push(at);
      if (position > threshold) counters.counted += 1;
    } else if (text.includes('"ping"')) {
      ws.send(PONG);
    } else if (text.includes("FELL_BEHIND")) {
      counters.fell_behind += 1;
      note(text);
    } else if (text.includes('"complete"')) {
      counters.completed += 1;
    } else {
      counters.other += 1;
      note(text);
    }
  });
  ws.on("error", (error) => {
    errored = true;
    counters.failed += 1;
    note(error);
    handshakeDone(); // counted as failed: the next one may open
  });
  ws.on("close", (code, reason) => {
    handshakeDone();
    if (!stopping && !errored) {
      counters.closed += 1;
      note(`closed: ${code} ${reason}`);
    }
  });
}

function answer(extra = {}) {
  process.stdout.write(`${JSON.stringify({ ...counters, ...extra })}\n`);
}

async function stop() {
  stopping = true;
  const closed = sockets.map(
    (ws) =>
      new Promise((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once("close", resolve);
        ws.close();
      }),
  );
  await Promise.race([Promise.all(closed), new Promise((resolve) => setTimeout(resolve, 15000))]);
  let size = 4;
  for (const got of positions) size += 4 + got.length * 16;
  const buffer = Buffer.alloc(size);
  let offset = buffer.writeUInt32LE(count, 0);
  for (let i = 0; i < count; i += 1) {
    offset = buffer.writeUInt32LE(positions[i].length, offset);
    for (const position of positions[i]) offset = buffer.writeBigInt64LE(BigInt(position), offset);
    for (const at of times[i]) offset = buffer.writeDoubleLE(at, offset);
  }
  writeFileSync(outfile, buffer);
  answer({ file: outfile });
  process.exit(0);
}

createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, argument] = line.trim().split(" ");
  if (command === "status") {
    answer();
  } else if (command === "threshold") {
    threshold = Number(argument);
    counters.counted = 0;
    answer();
  } else if (command === "stop") {
    stop();
  }
});

openMore();
