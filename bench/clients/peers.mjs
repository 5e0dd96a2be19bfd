// Drives the peers that have no C load tool of their own here, with their real client
// libraries (npm nats 2.x, mqtt 5.x), for bench/compare.py. Prints one JSON object per run.
//
//   node peers.mjs nats-publish  URL SIZE COUNT SECONDS WINDOW SUBJECTS
//   node peers.mjs nats-replay   URL COUNT SECONDS            (ordered consumer, no acks)
//   node peers.mjs nats-pull-ack URL COUNT SECONDS BATCH      (durable pull consumer, explicit ack)
//   node peers.mjs mqtt-publish  URL SIZE COUNT SECONDS WINDOW
//
// nats-publish (re)creates the file-storage stream BENCH capturing bench.> and publishes COUNT
// messages over SUBJECTS subjects with at most WINDOW acks outstanding; the two readers read
// that stream back. Every loop stops at its count or its time limit, whichever comes first.
import { connect, StorageType, AckPolicy } from 'nats';
import mqtt from 'mqtt';

const seconds_now = () => Number(process.hrtime.bigint()) / 1e9;
const report = (fields) => console.log(JSON.stringify(fields));

function result(messages, started, size) {
  const elapsed = seconds_now() - started;
  return { messages, seconds: elapsed, messages_per_second: messages / elapsed, payload_megabytes_per_second: messages * size / elapsed / 1e6 };
}

// Keeps up to `window` operations in flight; `start(index)` returns a promise.
async function windowed(count, time_limit_seconds, window, start) {
  const began = seconds_now();
  let issued = 0, done = 0, failure = null;
  await new Promise((resolve) => {
    const pump = () => {
      while (failure === null && issued - done < window && issued < count && seconds_now() - began < time_limit_seconds) {
        const index = issued++;
        start(index).then(() => { done++; pump(); }, (error) => { failure = error; done++; pump(); });
      }
      if (done === issued && (failure !== null || issued >= count || seconds_now() - began >= time_limit_seconds)) resolve();
    };
    pump();
  });
  if (failure) throw failure;
  return done;
}

async function nats_publish(url, size, count, time_limit_seconds, window, subjects) {
  const connection = await connect({ servers: url, maxReconnectAttempts: 0 });
  const manager = await connection.jetstreamManager();
  try { await manager.streams.delete('BENCH'); } catch { /* absent */ }
  await manager.streams.add({ name: 'BENCH', subjects: ['bench.>'], storage: StorageType.File });
  const jetstream = connection.jetstream({ timeout: 30000 });
  const payload = new Uint8Array(size).fill(97);
  // Core publishes with a reply subject, acks counted on one wildcard inbox subscription: what
  // the Go client's PublishAsync does, and several times cheaper in this client than awaiting
  // js.publish promises, so the peer is measured at its best.
  const inbox = `_INBOX.bench${process.pid}`;
  let acknowledged = 0, rejected = 0, wake = null;
  const subscription = connection.subscribe(`${inbox}.*`, {
    callback: (error, message) => {
      if (error || message.data.length === 0 || message.string().includes('"error"')) rejected++;
      acknowledged++;
      if (wake) { const resume = wake; wake = null; resume(); }
    },
  });
  await connection.flush();
  const started = seconds_now();
  let published = 0;
  while (published < count && seconds_now() - started < time_limit_seconds) {
    while (published - acknowledged >= window) await new Promise((resume) => { wake = resume; });
    connection.publish(`bench.s${published % subjects}`, payload, { reply: `${inbox}.${published}` });
    published++;
  }
  const drain_deadline = seconds_now() + 30;
  while (acknowledged < published && seconds_now() < drain_deadline) {
    await new Promise((resume) => { wake = resume; setTimeout(resume, 50); });
  }
  const fields = result(acknowledged - rejected, started, size);
  fields.rejected = rejected;
  subscription.unsubscribe();
  void jetstream;
  const info = await manager.streams.info('BENCH');
  fields.stored = info.state.messages;
  await connection.drain();
  return fields;
}

async function nats_read(url, count, time_limit_seconds, durable, batch) {
  const connection = await connect({ servers: url, maxReconnectAttempts: 0 });
  const jetstream = connection.jetstream();
  let consumer;
  if (durable) {
    const manager = await connection.jetstreamManager();
    try { await manager.consumers.delete('BENCH', 'bench-durable'); } catch { /* absent */ }
    await manager.consumers.add('BENCH', { durable_name: 'bench-durable', ack_policy: AckPolicy.Explicit, max_ack_pending: 20000 });
    consumer = await jetstream.consumers.get('BENCH', 'bench-durable');
  } else {
    consumer = await jetstream.consumers.get('BENCH');  // ordered consumer
  }
  const started = seconds_now();
  let received = 0, bytes = 0;
  const messages = await consumer.consume({ max_messages: batch });
  const timer = setTimeout(() => messages.stop(), time_limit_seconds * 1000);
  for await (const message of messages) {
    if (durable) message.ack();
    bytes += message.data.length;
    if (++received >= count) break;
  }
  clearTimeout(timer);
  const fields = result(received, started, received ? bytes / received : 0);
  await connection.drain();
  return fields;
}

async function mqtt_publish(url, size, count, time_limit_seconds, window) {
  const client = await mqtt.connectAsync(url, { protocolVersion: 4, clean: true, reconnectPeriod: 0, clientId: `bench-${process.pid}` });
  const payload = Buffer.alloc(size, 97);
  const started = seconds_now();
  const published = await windowed(count, time_limit_seconds, window, () => client.publishAsync('bench/t', payload, { qos: 1 }));
  const fields = result(published, started, size);
  await client.endAsync();
  return fields;
}

const [command, ...rest] = process.argv.slice(2);
const number = (text) => Number.parseFloat(text);
try {
  let fields;
  if (command === 'nats-publish') fields = await nats_publish(rest[0], number(rest[1]), number(rest[2]), number(rest[3]), number(rest[4]), number(rest[5] ?? '1'));
  else if (command === 'nats-replay') fields = await nats_read(rest[0], number(rest[1]), number(rest[2]), false, 1000);
  else if (command === 'nats-pull-ack') fields = await nats_read(rest[0], number(rest[1]), number(rest[2]), true, number(rest[3] ?? '1000'));
  else if (command === 'mqtt-publish') fields = await mqtt_publish(rest[0], number(rest[1]), number(rest[2]), number(rest[3]), number(rest[4]));
  else throw new Error(`unknown command ${command}`);
  report(fields);
  process.exit(0);
} catch (error) {
  report({ error: String(error && error.message ? error.message : error) });
  process.exit(1);
}
