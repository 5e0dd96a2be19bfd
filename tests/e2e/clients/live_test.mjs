// End-to-end tests of the live endpoints (Server-Sent Events and WebSocket) against the real
// `msgstore serve` binary on 127.0.0.1:0, driven by real clients: curl -N for SSE and the npm
// `ws` package for WebSocket. Run by ctest (label e2e) as `node --test live_test.mjs` with
// MSGSTORE_BINARY set; every server is started with its own data directory and stopped by PID.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

const binary = process.env.MSGSTORE_BINARY;
if (!binary) throw new Error('MSGSTORE_BINARY is not set (ctest sets it)');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const children = new Set();
after(() => { for (const child of children) child.kill('SIGKILL'); });

async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (predicate()) return;
    await sleep(20);
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

// One `msgstore serve` with its own data directory; stop() sends SIGTERM to its PID.
async function startServer(extraArguments = []) {
  const directory = mkdtempSync(join(tmpdir(), 'msgstore-live-'));
  const child = spawn(binary, ['--data', join(directory, 'data'), 'serve', '--listen', '127.0.0.1:0', '--io-threads', '2',
    '--live-heartbeat-interval-ms', '300', '--websocket-idle-timeout-ms', '4000', ...extraArguments],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line; log: ${log}`)), 10000);
    child.stdout.on('data', (data) => {
      log += data;
      for (const line of log.split('\n')) {
        try {
          const entry = JSON.parse(line);
          if (entry.message === 'listening') { clearTimeout(timer); resolve(entry.port); }
        } catch { /* a partial line */ }
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}; log: ${log}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    base,
    ws: `ws://127.0.0.1:${port}`,
    async stop() {
      const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      const result = await exited;
      clearTimeout(timer);
      children.delete(child);
      rmSync(directory, { recursive: true, force: true });
      assert.equal(result.code, 0, 'the server exits 0 on SIGTERM, with live clients connected');
    },
  };
}

async function createStream(server, name, partitions) {
  const response = await fetch(`${server.base}/v1/streams`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, partitions, subjects: [`${name}.>`] }),
  });
  assert.equal(response.status, 201, await response.text());
}

// Publishes [{subject, payload, timestamp_ms?}] in one batch; returns the positions.
async function publishBatch(server, stream, messages) {
  const response = await fetch(`${server.base}/v1/streams/${stream}/batch`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages }),
  });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  return JSON.parse(text);
}

// curl -N as the SSE client: parses events as they arrive.
function sseClient(url, headers = {}) {
  const headerArguments = Object.entries(headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`]);
  const child = spawn('curl', ['-sS', '-N', '--max-time', '60', ...headerArguments, url], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const client = { child, events: [], comments: 0, raw: '', exited: false };
  let pending = '';
  child.stdout.on('data', (data) => {
    client.raw += data;
    pending += data;
    let end;
    while ((end = pending.indexOf('\n\n')) >= 0) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      const event = {};
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) { client.comments += 1; continue; }
        const colon = line.indexOf(':');
        const field = line.slice(0, colon);
        const value = line.slice(colon + 1).replace(/^ /, '');
        event[field] = value;
      }
      if (event.data !== undefined) {
        event.message = JSON.parse(event.data);
        client.events.push(event);
      }
    }
  });
  child.on('exit', () => { client.exited = true; children.delete(child); });
  client.close = () => child.kill('SIGKILL');
  return client;
}

// A ws client that counts grants and fails if the server ever sends more than granted.
function wsClient(url, initialCredit) {
  const socket = new WebSocket(url);
  const client = { socket, messages: [], errors: [], granted: 0, violations: 0, closeCode: null, opened: false };
  client.grant = (credit) => { client.granted += credit; socket.send(JSON.stringify({ credit })); };
  socket.on('open', () => { client.opened = true; if (initialCredit > 0) client.grant(initialCredit); });
  socket.on('message', (data) => {
    const message = JSON.parse(data.toString());
    if (message.error) { client.errors.push(message.error); return; }
    client.messages.push(message);
    if (client.messages.length > client.granted) client.violations += 1;
  });
  socket.on('close', (code) => { client.closeCode = code; });
  socket.on('error', () => {});
  client.close = () => socket.terminate();
  return client;
}

function assertDenseOffsets(messages, partitions, expectedPerPartition, label) {
  for (let partition = 0; partition < partitions; ++partition) {
    const offsets = messages.filter((message) => message.partition === partition).map((message) => message.offset);
    assert.deepEqual(offsets, [...Array(expectedPerPartition[partition]).keys()],
      `${label}: partition ${partition} delivered every offset once, in order`);
  }
}

test('replay then live: no gap and no duplicate while a producer publishes', async () => {
  const server = await startServer();
  try {
    await createStream(server, 'orders', 2);
    const total = 1200;
    const batch = (from, count) => [...Array(count).keys()].map((index) => ({ subject: `orders.n${from + index}`, payload: `message ${from + index}` }));
    await publishBatch(server, 'orders', batch(0, 400));
    const sse = sseClient(`${server.base}/v1/streams/orders/events?from=beginning`);
    const ws = wsClient(`${server.ws}/v1/streams/orders/ws?from=beginning`, 100000);
    // The producer keeps publishing while the clients replay and switch to live.
    for (let next = 400; next < total; next += 50) {
      await publishBatch(server, 'orders', batch(next, 50));
    }
    const described = await (await fetch(`${server.base}/v1/streams/orders`)).json();
    const perPartition = described.partitions.map((partition) => partition.next_offset);
    await waitFor(() => sse.events.length >= total && ws.messages.length >= total, 20000, 'every message on both clients');
    await sleep(300);  // nothing more (no duplicates) may arrive
    for (const [label, messages] of [['sse', sse.events.map((event) => event.message)], ['ws', ws.messages]]) {
      assert.equal(messages.length, total, `${label}: exactly every message`);
      assertDenseOffsets(messages, 2, perPartition, label);
      assert.deepEqual(new Set(messages.map((message) => message.payload)).size, total, `${label}: every payload once`);
      assert.ok(messages.every((message) => message.stream === 'orders' && typeof message.timestamp_ms === 'number'));
    }
    assert.ok(sse.comments >= 1, 'SSE sends comment lines (position, heartbeats)');
    assert.equal(ws.violations, 0);
    sse.close();
    ws.close();
  } finally {
    await server.stop();
  }
});

test('resume by offset, by time, by Last-Event-ID and by position', async () => {
  const server = await startServer();
  try {
    await createStream(server, 'events', 3);
    const messages = [...Array(90).keys()].map((index) => ({ subject: `events.k${index % 7}`, payload: `p${index}`, timestamp_ms: 1000000 + index * 10 }));
    await publishBatch(server, 'events', messages);

    // By offset, one partition: exactly offsets 5.. of partition 1.
    const byOffset = sseClient(`${server.base}/v1/streams/events/events?partition=1&offset=5`);
    await waitFor(() => byOffset.events.length >= 25, 5000, 'partition 1 from offset 5');
    await sleep(200);
    assert.deepEqual(byOffset.events.map((event) => event.message.offset), [...Array(25).keys()].map((index) => index + 5));
    assert.ok(byOffset.events.every((event) => event.message.partition === 1));
    assert.equal(byOffset.events[0].id, '1:6', 'the id is the next offset of every followed partition');
    byOffset.close();

    // By time over WebSocket: every partition from the first message at or after T.
    const cut = 1000000 + 60 * 10;
    const byTime = wsClient(`${server.ws}/v1/streams/events/ws?time_ms=${cut}`, 1000);
    await waitFor(() => byTime.messages.length >= 30, 5000, 'messages at or after the time');
    await sleep(200);
    assert.equal(byTime.messages.length, 30);
    assert.ok(byTime.messages.every((message) => message.timestamp_ms >= cut));
    byTime.close();

    // By Last-Event-ID: read 40 events, reconnect with the 40th id: events 41.. follow, none repeated.
    const first = sseClient(`${server.base}/v1/streams/events/events?from=beginning`);
    await waitFor(() => first.events.length >= 90, 5000, 'all 90 events');
    first.close();
    const lastId = first.events[39].id;
    assert.match(lastId, /^0:\d+,1:\d+,2:\d+$/);
    const resumed = sseClient(`${server.base}/v1/streams/events/events`, { 'Last-Event-ID': lastId });
    await waitFor(() => resumed.events.length >= 50, 5000, 'the 50 events after the id');
    await sleep(200);
    const key = (event) => `${event.message.partition}:${event.message.offset}`;
    const seen = new Set(first.events.slice(0, 40).map(key));
    assert.equal(resumed.events.length, 50);
    assert.ok(resumed.events.every((event) => !seen.has(key(event))), 'nothing before the id is repeated');
    assert.equal(new Set([...seen, ...resumed.events.map(key)]).size, 90, 'nothing is missed');
    resumed.close();

    // The same position as a query parameter over WebSocket.
    const byPosition = wsClient(`${server.ws}/v1/streams/events/ws?position=${encodeURIComponent(lastId)}`, 1000);
    await waitFor(() => byPosition.messages.length >= 50, 5000, 'the 50 messages after the position');
    await sleep(200);
    assert.equal(byPosition.messages.length, 50);
    byPosition.close();
  } finally {
    await server.stop();
  }
});

test('WebSocket credit: never more than granted, nothing lost when credit comes later', async () => {
  const server = await startServer();
  try {
    await createStream(server, 'credit', 1);
    await publishBatch(server, 'credit', [...Array(40).keys()].map((index) => ({ subject: 'credit.a', payload: `c${index}` })));
    const client = wsClient(`${server.ws}/v1/streams/credit/ws?from=beginning`, 5);
    await waitFor(() => client.messages.length >= 5, 5000, 'the first 5');
    await sleep(400);
    assert.equal(client.messages.length, 5, 'no sixth message without credit');
    client.grant(10);
    await waitFor(() => client.messages.length >= 15, 5000, '15 messages');
    await sleep(300);
    assert.equal(client.messages.length, 15);
    // Messages published while the client has no credit wait in the log, not in memory.
    await publishBatch(server, 'credit', [...Array(60).keys()].map((index) => ({ subject: 'credit.a', payload: `c${40 + index}` })));
    await sleep(300);
    assert.equal(client.messages.length, 15);
    client.grant(1000);
    await waitFor(() => client.messages.length >= 100, 5000, 'all 100');
    await sleep(200);
    assert.deepEqual(client.messages.map((message) => message.offset), [...Array(100).keys()]);
    assert.deepEqual(client.messages.map((message) => message.payload), [...Array(100).keys()].map((index) => `c${index}`));
    assert.equal(client.violations, 0);
    client.close();
  } finally {
    await server.stop();
  }
});

test('WebSocket credit granted in small steps while a producer publishes: nothing lost, nothing repeated', async () => {
  const server = await startServer();
  try {
    await createStream(server, 'steps', 1);
    const client = wsClient(`${server.ws}/v1/streams/steps/ws?from=beginning`, 3);
    // Grant 3 more every time the client has used all of its credit (grants race the server's reads).
    client.socket.on('message', () => { if (client.messages.length === client.granted) client.grant(3); });
    for (let round = 0; round < 20; ++round) {
      await publishBatch(server, 'steps', [...Array(25).keys()].map((index) => ({ subject: 'steps.a', payload: `${round * 25 + index}` })));
    }
    await waitFor(() => client.messages.length >= 500, 15000, 'all 500 messages');
    await sleep(200);
    assert.equal(client.violations, 0);
    assert.deepEqual(client.messages.map((message) => message.offset), [...Array(500).keys()]);
    client.close();
  } finally {
    await server.stop();
  }
});

test('subject filter on both endpoints', async () => {
  const server = await startServer();
  try {
    await createStream(server, 'shop', 2);
    const subjects = ['shop.eu.created', 'shop.us.created', 'shop.eu.paid', 'shop.eu.created.late'];
    await publishBatch(server, 'shop', [...Array(40).keys()].map((index) => ({ subject: subjects[index % 4], payload: `s${index}` })));
    const sse = sseClient(`${server.base}/v1/streams/shop/events?from=beginning&subject=${encodeURIComponent('shop.eu.*')}`);
    const ws = wsClient(`${server.ws}/v1/streams/shop/ws?from=beginning&subject=${encodeURIComponent('shop.*.created')}`, 1000);
    await waitFor(() => sse.events.length >= 20 && ws.messages.length >= 20, 5000, 'the matching messages');
    await publishBatch(server, 'shop', [{ subject: 'shop.eu.paid', payload: 'live' }, { subject: 'shop.us.paid', payload: 'other' }]);
    await waitFor(() => sse.events.length >= 21, 5000, 'the live match');
    await sleep(300);
    assert.equal(sse.events.length, 21);
    assert.ok(sse.events.every((event) => /^shop\.eu\.[^.]+$/.test(event.message.subject)));
    assert.equal(ws.messages.length, 20);
    assert.ok(ws.messages.every((message) => /^shop\.[^.]+\.created$/.test(message.subject)));
    sse.close();
    ws.close();
  } finally {
    await server.stop();
  }
});

test('unknown stream and bad parameters: the JSON error shape (HTTP for SSE, a frame and a close for WebSocket)', async () => {
  const server = await startServer();
  try {
    await createStream(server, 'known', 2);
    const expectError = async (path, status, code) => {
      const response = await fetch(`${server.base}${path}`);
      assert.equal(response.status, status, path);
      const body = await response.json();
      assert.equal(body.error.code, code, path);
      assert.equal(typeof body.error.message, 'string');
    };
    await expectError('/v1/streams/missing/events', 404, 'stream_not_found');
    await expectError('/v1/streams/known/events?offset=abc', 400, 'invalid_argument');
    await expectError('/v1/streams/known/events?from=middle', 400, 'invalid_argument');
    await expectError('/v1/streams/known/events?from=end&offset=3', 400, 'invalid_argument');
    await expectError('/v1/streams/known/events?partition=2', 400, 'invalid_argument');
    await expectError('/v1/streams/known/events?partition=0&offset=10', 400, 'offset_out_of_range');
    await expectError('/v1/streams/known/events?subject=a..b', 400, 'invalid_argument');
    await expectError('/v1/streams/known/events?sujet=a', 400, 'invalid_argument');
    await expectError('/v1/streams/known/events?position=0:1,x', 400, 'invalid_argument');
    await expectError('/v1/streams/known/ws', 426, 'invalid_argument');  // not an upgrade

    const closedWith = async (url, send) => {
      const client = wsClient(url, 0);
      await waitFor(() => client.opened, 5000, 'the upgrade');
      if (send) client.socket.send(send);
      await waitFor(() => client.closeCode !== null, 5000, 'the close frame');
      return client;
    };
    const missing = await closedWith(`${server.ws}/v1/streams/missing/ws`);
    assert.equal(missing.errors[0].code, 'stream_not_found');
    assert.equal(missing.closeCode, 4404);
    const badOffset = await closedWith(`${server.ws}/v1/streams/known/ws?offset=-1`);
    assert.equal(badOffset.errors[0].code, 'invalid_argument');
    assert.equal(badOffset.closeCode, 4400);
    for (const frame of ['{"credit": 0}', '{"credit": -4}', 'credit please', '{"credit": 1, "more": 2}', '{"credit": 1.5}']) {
      const badCredit = await closedWith(`${server.ws}/v1/streams/known/ws`, frame);
      assert.equal(badCredit.errors[0]?.code, 'invalid_argument', frame);
      assert.equal(badCredit.closeCode, 4400, frame);
    }
    // The server still serves after all that.
    assert.equal((await fetch(`${server.base}/healthz`)).status, 200);
  } finally {
    await server.stop();
  }
});

test('a stream deleted under live clients ends them with the error shape', async () => {
  const server = await startServer();
  try {
    await createStream(server, 'doomed', 1);
    await publishBatch(server, 'doomed', [{ subject: 'doomed.a', payload: 'one' }]);
    const sse = sseClient(`${server.base}/v1/streams/doomed/events?from=beginning`);
    const ws = wsClient(`${server.ws}/v1/streams/doomed/ws?from=beginning`, 10);
    await waitFor(() => sse.events.length >= 1 && ws.messages.length >= 1, 5000, 'the first message');
    const deleted = await fetch(`${server.base}/v1/streams/doomed`, { method: 'DELETE' });
    assert.ok(deleted.status === 200 || deleted.status === 204, `delete answered ${deleted.status}`);
    await waitFor(() => sse.exited && ws.closeCode !== null, 5000, 'both clients to be closed');
    const last = sse.events[sse.events.length - 1];
    assert.equal(last.event, 'error');
    assert.equal(last.message.error.code, 'stream_not_found');
    assert.equal(last.message.error.details.position, '0:1');
    assert.equal(ws.errors[0].code, 'stream_not_found');
    assert.equal(ws.closeCode, 4404);
  } finally {
    await server.stop();
  }
});

test('a stalled client neither blocks the producer nor another client', async () => {
  const server = await startServer(['--subscriber-queue-bytes-max', '65536']);
  try {
    await createStream(server, 'load', 1);
    const stalled = sseClient(`${server.base}/v1/streams/load/events?from=beginning`);
    const stalledWs = wsClient(`${server.ws}/v1/streams/load/ws?from=beginning`, 1000000);
    await waitFor(() => stalled.comments >= 1 && stalledWs.opened, 5000, 'the stalled clients to connect');
    stalled.child.kill('SIGSTOP');  // curl stops reading: the socket buffers fill up
    stalledWs.socket._socket.pause();  // the ws client stops reading too
    const healthy = sseClient(`${server.base}/v1/streams/load/events?from=beginning`);
    const payload = 'x'.repeat(2000);
    const rounds = 40;
    const started = Date.now();
    for (let round = 0; round < rounds; ++round) {
      const roundStart = Date.now();
      await publishBatch(server, 'load', [...Array(100).keys()].map((index) => ({ subject: 'load.a', payload: `${round}-${index}-${payload}` })));
      assert.ok(Date.now() - roundStart < 5000, 'a publish never waits for live clients');
    }
    await waitFor(() => healthy.events.length >= rounds * 100, 20000, 'the healthy client to get everything');
    assert.ok(Date.now() - started < 25000);
    assert.ok(stalled.events.length < rounds * 100, 'the stalled client really stalled');
    assert.ok(stalledWs.messages.length < rounds * 100, 'the stalled ws client really stalled');
    // A new client still connects and reads while the stalled ones hang.
    const late = wsClient(`${server.ws}/v1/streams/load/ws?offset=3990`, 100);
    await waitFor(() => late.messages.length >= 10, 5000, 'a late client');
    stalled.child.kill('SIGCONT');
    stalled.close();
    stalledWs.close();
    healthy.close();
    late.close();
  } finally {
    await server.stop();
  }
});

test('WebSocket keepalive: a client answering pings stays, a silent peer is closed after the idle timeout', async () => {
  const server = await startServer();  // websocket_idle_timeout_ms = 4000
  try {
    await createStream(server, 'quiet', 1);
    const alive = wsClient(`${server.ws}/v1/streams/quiet/ws`, 10);  // ws answers pings itself
    let pings = 0;
    alive.socket.on('ping', () => { pings += 1; });
    // A raw TCP peer that completes the upgrade, then never reads or answers anything.
    const url = new URL(server.base);
    const silent = connect(Number(url.port), '127.0.0.1');
    let silentClosedAt = 0;
    let response = '';
    silent.on('data', (data) => { response += data; });
    silent.on('close', () => { silentClosedAt = Date.now(); });
    silent.on('error', () => {});
    silent.write('GET /v1/streams/quiet/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
                 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    const started = Date.now();
    await waitFor(() => response.startsWith('HTTP/1.1 101'), 5000, 'the raw upgrade');
    await waitFor(() => silentClosedAt > 0, 9000, 'the silent peer to be closed');
    assert.ok(silentClosedAt - started >= 3500, 'not before the idle timeout');
    assert.ok(pings >= 1, 'the server pings an idle client');
    assert.equal(alive.closeCode, null, 'a client that answers pings stays connected');
    alive.close();
  } finally {
    await server.stop();
  }
});

test('SIGTERM with live clients connected: they are ended and the server exits 0', async () => {
  const server = await startServer();
  await createStream(server, 'open', 1);
  const sse = sseClient(`${server.base}/v1/streams/open/events`);
  const waiting = wsClient(`${server.ws}/v1/streams/open/ws`, 10);     // at the end of the log
  const noCredit = wsClient(`${server.ws}/v1/streams/open/ws`, 0);     // waiting for credit
  await waitFor(() => sse.comments >= 1 && waiting.opened && noCredit.opened, 5000, 'the clients to connect');
  const started = Date.now();
  await server.stop();  // asserts exit status 0
  assert.ok(Date.now() - started < 4000, 'live clients do not hold the shutdown until its deadline');
  await waitFor(() => sse.exited && waiting.closeCode !== null && noCredit.closeCode !== null, 5000, 'the clients to be closed');
  assert.equal(waiting.closeCode, 1001);
  assert.equal(noCredit.closeCode, 1001);
});
