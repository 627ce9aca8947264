'use strict';
// Example photo-ready subscriber: kafkajs + avsc and the .avsc files, nothing else.
// The behaviour it follows is described in ../README.md.
const fs = require('fs');
const path = require('path');

// Stop cleanly on SIGINT/SIGTERM. The handlers go in first, so that a signal arriving while
// the libraries still load also ends with exit code 0.
let consumer = null;
let joined = false;
let stopping = null;
// Exit only once stdout has taken every line written so far (pipes can be asynchronous).
const exit = (code) => process.stdout.write('', () => process.exit(code));
function shutdown(code) {
  if (!consumer) return exit(code); // no client yet: nothing to commit
  stopping = stopping || leave().then(() => exit(code), (err) => {
    process.stderr.write(`disconnect failed: ${err.message}\n`);
    exit(1);
  });
}
async function leave() {
  // kafkajs's stop() is a no-op while the first group join is in flight, and the broker then
  // keeps the half-joined member (blocking the next start) until its session times out.
  for (let waited = 0; !joined && waited < 10000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  // disconnect() lets the message in hand finish, commits what was handled, leaves the group.
  await consumer.disconnect();
}
process.on('SIGINT', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));

const avro = require('avsc');
const { Kafka, logLevel } = require('kafkajs');

const TOPIC = 'photo-ready';
const BROKERS = (process.env.KAFKA_BOOTSTRAP_SERVERS || '127.0.0.1:9092').split(',').map((b) => b.trim());
const GROUP_ID = process.env.GROUP_ID || 'example-subscriber';
const SEEN_FILE = process.env.SEEN_FILE || 'seen-event-ids.txt';
const IDLE_SECONDS = process.env.EXIT_WHEN_IDLE_SECONDS ? Number(process.env.EXIT_WHEN_IDLE_SECONDS) : null;

// --- Schemas ---------------------------------------------------------------
// Without SCHEMAS_DIR, walk up from this file until a schemas/ImageReady.avsc turns up.
function findSchemasDir() {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'schemas', 'ImageReady.avsc'))) return path.join(dir, 'schemas');
    if (path.dirname(dir) === dir) throw new Error('no schemas/ImageReady.avsc above ' + __dirname);
  }
}
const SCHEMAS_DIR = process.env.SCHEMAS_DIR || findSchemasDir();
const loadType = (file) => avro.Type.forSchema(JSON.parse(fs.readFileSync(file, 'utf8')));

// CRC-64-AVRO (Rabin) as given in the Avro specification. avsc's type.fingerprint() only
// offers node's crypto hashes (md5, sha256...), and single-object encoding needs this one.
const EMPTY = 0xc15d213aa4d7a795n;
const TABLE = Array.from({ length: 256 }, (_, i) => {
  let fp = BigInt(i);
  for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n));
  return fp;
});
function rabinFingerprint(buf) {
  let fp = EMPTY;
  for (const byte of buf) fp = (fp >> 8n) ^ TABLE[Number((fp ^ BigInt(byte)) & 0xffn)];
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(fp); // the header carries it little-endian
  return out;
}
// type.schema() with no options is avsc's Parsing Canonical Form (full names, no doc, no
// logicalType, attributes in canonical order). Beware: JSON.stringify(type) is NOT; it keeps them.
const fingerprintOf = (type) => rabinFingerprint(Buffer.from(JSON.stringify(type.schema()), 'utf8')).toString('hex');

const reader = loadType(path.join(SCHEMAS_DIR, 'ImageReady.avsc'));
const writers = new Map([[fingerprintOf(reader), null]]); // fingerprint -> resolver (null: the reader itself)
const historyDir = path.join(SCHEMAS_DIR, 'history');
for (const name of fs.existsSync(historyDir) ? fs.readdirSync(historyDir).sort() : []) {
  if (!/^ImageReady\.v\d+\.avsc$/.test(name)) continue;
  const writer = loadType(path.join(historyDir, name));
  const fp = fingerprintOf(writer);
  // An old version identical to the current schema has the same fingerprint: read it plainly.
  if (!writers.has(fp)) writers.set(fp, reader.createResolver(writer));
}

// Single-object encoding: C3 01, 8-byte fingerprint, Avro binary body. Throws with a reason.
function decode(value) {
  if (!value || value.length < 10) throw new Error(`too short for single-object encoding (${value ? value.length : 0} bytes)`);
  if (value[0] !== 0xc3 || value[1] !== 0x01) throw new Error(`bad magic ${value.subarray(0, 2).toString('hex')}`);
  const fp = value.subarray(2, 10).toString('hex');
  if (!writers.has(fp)) throw new Error(`unknown writer schema fingerprint ${fp}`);
  try {
    // fromBuffer throws on a truncated body and on trailing bytes.
    return reader.fromBuffer(value.subarray(10), writers.get(fp) || undefined);
  } catch (err) {
    throw new Error(`corrupt Avro body (writer ${fp}): ${err.message}`);
  }
}

// --- Deduplication ---------------------------------------------------------
// Delivery is at least once, so remember every handled event_id across restarts.
const seen = new Set(fs.existsSync(SEEN_FILE) ? fs.readFileSync(SEEN_FILE, 'utf8').split('\n').filter(Boolean) : []);

// --- Kafka -----------------------------------------------------------------
// stdout carries the data, so client logs go to stderr, and only warnings and errors.
const toStderr = () => ({ namespace, label, log }) =>
  process.stderr.write(`kafkajs ${label} ${namespace}: ${log.message}\n`);
const kafka = new Kafka({ clientId: 'photostream-example-node', brokers: BROKERS, logLevel: logLevel.WARN, logCreator: toStderr });
// maxWaitTimeInMs bounds how long an empty fetch blocks, and so how long a shutdown waits for it.
consumer = kafka.consumer({ groupId: GROUP_ID, maxWaitTimeInMs: 1000 });

let lastActivity = Date.now();
consumer.on(consumer.events.GROUP_JOIN, () => { joined = true; lastActivity = Date.now(); });
// A crash kafkajs will not recover from on its own (it restarts itself on retriable errors).
consumer.on(consumer.events.CRASH, ({ payload }) => {
  if (!payload.restart) {
    process.stderr.write(`consumer crashed: ${payload.error.message}\n`);
    shutdown(1);
  }
});
if (IDLE_SECONDS !== null) {
  // Idle time counts from when the group gave this consumer its partitions (an empty topic
  // ends the run as well).
  setInterval(() => {
    if (joined && Date.now() - lastActivity >= IDLE_SECONDS * 1000) shutdown(0);
  }, 100);
}

async function handle({ partition, message }) {
  lastActivity = Date.now();
  const offset = Number(message.offset); // kafkajs hands offsets over as strings
  let event;
  try {
    event = decode(message.value);
  } catch (err) {
    // Never die on a bad message: say what and where, then move on; its offset is committed too.
    process.stderr.write(`skipping ${TOPIC} partition ${partition} offset ${offset}: ${err.message}\n`);
    return;
  }
  const duplicate = seen.has(event.event_id);
  // This is where a real service does its work (and skips it when duplicate is true).
  process.stdout.write(JSON.stringify({
    partition,
    offset,
    event_id: event.event_id,
    upload_id: event.upload_id,
    photographer_id: event.photographer_id,
    variant_keys: event.variants.map((v) => v.key).sort(),
    ready_at: event.ready_at, // timestamp-millis: without a registered logical type, a plain number
    duplicate,
  }) + '\n');
  if (!duplicate) {
    // Record the id before the offset is committed: a crash in between re-delivers the
    // event and the seen file recognises it.
    fs.appendFileSync(SEEN_FILE, event.event_id + '\n');
    seen.add(event.event_id);
  }
}

async function main() {
  await consumer.connect();
  // fromBeginning only applies to a group without committed offsets: a new group starts at the
  // oldest retained event, a known group resumes where it committed.
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  // With autoCommit (the default), kafkajs marks an offset as done only once eachMessage has
  // returned, and commits those offsets after every batch, before a rebalance, and when stopping
  // (the batch in hand ends after the current message and is committed). Calling
  // consumer.commitOffsets() yourself would not do: it is silently skipped once stopping began.
  await consumer.run({ eachMessage: handle });
}

main().catch((err) => {
  process.stderr.write(`subscriber failed: ${err.stack || err}\n`);
  exit(1);
});
