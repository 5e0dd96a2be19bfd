// msgstore's live WebSocket endpoint driven with the npm `ws` client, for bench/compare.py.
// Prints one JSON object per run. Loopback only; every loop ends at its count or time limit.
//
//   node msgstore.mjs ws-replay URL STREAM COUNT SECONDS CREDIT
//     Reads COUNT messages from the beginning of STREAM over one WebSocket, granting CREDIT
//     messages at a time (a new grant of CREDIT/2 whenever half of the credit was used), and
//     prints {"messages","seconds","messages_per_second"}.
//   node msgstore.mjs consume URL STREAM COUNT SECONDS BATCH
//     (Re)creates the durable consumer `bench-durable` on STREAM from the beginning
//     (max_ack_pending 20000, like the NATS run), then fetches BATCH messages per request over
//     keep-alive HTTP and acks each batch with one request; the ack of one batch overlaps the
//     next fetch (at most one ack in flight), and every ack must answer 200 with settled = the
//     batch size. Prints {"messages","seconds","messages_per_second","payload_megabytes_per_second"}.
//   node msgstore.mjs ws-idle URL STREAM CONNECTIONS SECONDS [CREDIT]
//     Opens CONNECTIONS subscriptions from the end of STREAM (100 handshakes in flight at most),
//     grants each CREDIT messages (default 10, so each stays live but nearly idle), holds them
//     SECONDS, and prints {"connections_opened","errors","messages_received"}. The server needs
//     --max-connections above CONNECTIONS.
import WebSocket from 'ws';

const seconds_now = () => Number(process.hrtime.bigint()) / 1e9;
const report = (fields) => console.log(JSON.stringify(fields));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function websocket_url(base, stream, query) {
  const url = new URL(base);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) throw new Error('loopback addresses only');
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.pathname = `/v1/streams/${encodeURIComponent(stream)}/ws`;
  url.search = query;
  return url.toString();
}

function positive_integer(text, name) {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer (got ${text})`);
  return value;
}

async function ws_replay(base, stream, count, seconds, credit) {
  const socket = new WebSocket(websocket_url(base, stream, 'from=beginning'), { perMessageDeflate: false });
  const grant_step = Math.max(1, Math.floor(credit / 2));
  let received = 0;
  let granted = 0;
  let started = 0;
  let failure = null;
  await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(), seconds * 1000);
    const finish = () => { clearTimeout(timer); resolve(); };
    socket.on('open', () => {
      started = seconds_now();
      granted = Math.min(credit, count);
      socket.send(JSON.stringify({ credit: granted }));
    });
    socket.on('message', (data) => {
      if (data.length > 9 && data.subarray(0, 9).toString() === '{"error":') {
        failure = new Error(data.toString());
        finish();
        return;
      }
      received += 1;
      if (received >= count) { finish(); return; }
      if (granted - received <= credit - grant_step && granted < count) {
        const grant = Math.min(grant_step, count - granted);
        granted += grant;
        socket.send(JSON.stringify({ credit: grant }));
      }
    });
    socket.on('error', (error) => { failure = error; finish(); });
    socket.on('close', () => finish());
  });
  const elapsed = started > 0 ? seconds_now() - started : 0;
  socket.terminate();
  if (failure) throw failure;
  report({ messages: received, seconds: elapsed, messages_per_second: elapsed > 0 ? received / elapsed : 0 });
}

async function ws_idle(base, stream, connections, seconds, credit) {
  const url = websocket_url(base, stream, 'from=end');
  const sockets = [];
  let opened = 0;
  let errors = 0;
  let messages = 0;
  const open_one = () => new Promise((resolve) => {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    sockets.push(socket);
    let settled = false;
    const settle = () => { if (!settled) { settled = true; resolve(); } };
    socket.on('open', () => {
      opened += 1;
      socket.send(JSON.stringify({ credit }));
      settle();
    });
    socket.on('message', () => { messages += 1; });
    // A socket that fails, or closes before the run ends, counts as one error.
    let failed = false;
    const fail = () => { if (!failed && !socket.ending) { failed = true; errors += 1; } settle(); };
    socket.on('error', fail);
    socket.on('close', fail);
  });
  const deadline = seconds_now() + seconds;
  let next = 0;
  const in_flight_max = 100;
  const workers = [...Array(Math.min(in_flight_max, connections)).keys()].map(async () => {
    while (next < connections && seconds_now() < deadline) {
      next += 1;
      await open_one();
    }
  });
  await Promise.all(workers);
  while (seconds_now() < deadline) await sleep(Math.min(200, Math.max(0, (deadline - seconds_now()) * 1000)));
  for (const socket of sockets) {
    socket.ending = true;
    socket.terminate();
  }
  report({ connections_opened: opened, errors, messages_received: messages });
}

function loopback_base(base) {
  const url = new URL(base);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) throw new Error('loopback addresses only');
  return url.origin;
}

async function http_json(url, method, body) {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: response.status, body: parsed, text };
}

async function consume(base, stream, count, seconds, batch) {
  const origin = loopback_base(base);
  const consumers = `${origin}/v1/streams/${encodeURIComponent(stream)}/consumers`;
  const name = 'bench-durable';
  await http_json(`${consumers}/${name}`, 'DELETE');
  const created = await http_json(consumers, 'POST', { name, start: 'beginning', ack_wait_ms: 60000, max_ack_pending: 20000 });
  if (created.status !== 201) throw new Error(`creating the consumer: ${created.status} ${created.text}`);
  const started = seconds_now();
  const deadline = started + seconds;
  let received = 0;
  let bytes = 0;
  let acked = 0;
  let ack_in_flight = null;
  const settle = async (deliveries) => {
    const answer = await http_json(`${consumers}/${name}/ack`, 'POST', { deliveries });
    if (answer.status !== 200 || answer.body?.settled !== deliveries.length) {
      throw new Error(`ack: ${answer.status} ${answer.text.slice(0, 300)}`);
    }
    acked += deliveries.length;
  };
  while (received < count && seconds_now() < deadline) {
    const want = Math.min(batch, count - received);
    const fetched = await http_json(`${consumers}/${name}/fetch`, 'POST', { max_messages: want, wait_ms: 1000 });
    if (fetched.status !== 200) throw new Error(`fetch: ${fetched.status} ${fetched.text.slice(0, 300)}`);
    const messages = fetched.body.messages;
    if (messages.length === 0) continue;
    received += messages.length;
    for (const message of messages) bytes += message.payload.length;
    if (ack_in_flight) await ack_in_flight;
    ack_in_flight = settle(messages.map((message) => message.delivery));
  }
  if (ack_in_flight) await ack_in_flight;
  const elapsed = seconds_now() - started;
  report({ messages: acked, seconds: elapsed, messages_per_second: acked / elapsed,
           payload_megabytes_per_second: bytes / elapsed / 1e6 });
}

const [command, ...rest] = process.argv.slice(2);
try {
  if (command === 'consume' && rest.length === 5) {
    await consume(rest[0], rest[1], positive_integer(rest[2], 'COUNT'), positive_integer(rest[3], 'SECONDS'),
      positive_integer(rest[4], 'BATCH'));
  } else if (command === 'ws-replay' && rest.length === 5) {
    await ws_replay(rest[0], rest[1], positive_integer(rest[2], 'COUNT'), positive_integer(rest[3], 'SECONDS'),
      positive_integer(rest[4], 'CREDIT'));
  } else if (command === 'ws-idle' && (rest.length === 4 || rest.length === 5)) {
    await ws_idle(rest[0], rest[1], positive_integer(rest[2], 'CONNECTIONS'), positive_integer(rest[3], 'SECONDS'),
      rest.length === 5 ? positive_integer(rest[4], 'CREDIT') : 10);
  } else {
    console.error('usage: node msgstore.mjs consume URL STREAM COUNT SECONDS BATCH\n' +
                  '       node msgstore.mjs ws-replay URL STREAM COUNT SECONDS CREDIT\n' +
                  '       node msgstore.mjs ws-idle URL STREAM CONNECTIONS SECONDS [CREDIT]');
    process.exit(2);
  }
} catch (error) {
  console.error(`msgstore.mjs ${command}: ${error.message}`);
  process.exit(1);
}
