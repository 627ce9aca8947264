// Checks docs/asyncapi.yaml with the official AsyncAPI parser and its Avro schema parser.
//
//   node tests/asyncapi/check.mjs [path/to/asyncapi.yaml]
//
// Diagnostics go to stderr. Exit 1 on any error-severity diagnostic or on a payload the parser
// did not really check (see below); exit 2 on a usage error. On success, prints one JSON line to
// stdout describing what was parsed, for tests/schemas/test_asyncapi.py to compare with the
// schemas photostream loads:
//
//   {"document", "asyncapi", "version", "channels": [{"id", "address", "partitions",
//     "topicConfiguration", "messages": [{"name", "schemaFormat", "contentType", "keyType",
//                   "payload": {"name": "<namespace>.<name>", "fields": [...]}}]}],
//    "operations": [{"id", "action", "channel"}]}
//
// Two gaps of @asyncapi/parser 3.6 with AsyncAPI 3 documents are closed here:
// - It never calls a custom schema parser's validate() for v3 Multi Format Schema Objects (only
//   its v2 ruleset does), so an .avsc with an unknown type parses without a single diagnostic.
//   This script runs the Avro schema parser's validate() (avsc's Type.forSchema) on every Avro
//   payload itself.
// - A schemaFormat that no registered parser handles (e.g. application/vnd.apache.avro;
//   version=1.11.0, which the Avro parser does not list) is accepted silently and the payload
//   is left unparsed. Here it is an error.

import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

import { AvroSchemaParser } from '@asyncapi/avro-schema-parser';
import { Parser, fromFile } from '@asyncapi/parser';

const SEVERITY = ['error', 'warning', 'information', 'hint'];
const ERROR = 0;
const ORIGINAL_PAYLOAD = 'x-parser-original-payload';

function usage(message) {
  process.stderr.write(`${message}\nusage: node check.mjs [path/to/asyncapi.yaml]\n`);
  process.exit(2);
}

function report(severity, code, where, message) {
  const location = where ? ` at ${where}` : '';
  process.stderr.write(`${SEVERITY[severity] ?? severity} ${code}${location}: ${message}\n`);
}

function diagnosticLocation(diagnostic) {
  const pointer = (diagnostic.path ?? []).join('/');
  const line = diagnostic.range?.start?.line;
  return line === undefined ? pointer : `${pointer} (line ${line + 1})`;
}

// The full name of an Avro named type: a dotted name is already full, else namespace + name.
function avroFullName(schema, enclosingNamespace = '') {
  const { name, namespace = enclosingNamespace } = schema;
  if (typeof name !== 'string') return null;
  if (name.includes('.') || !namespace) return name;
  return `${namespace}.${name}`;
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length > 1) usage('too many arguments');
  const here = path.dirname(fileURLToPath(import.meta.url));
  // $refs in the document (../schemas/<Event>.avsc) resolve against this path: fromFile passes
  // it to the parser as `source`.
  const documentPath = path.resolve(args[0] ?? path.join(here, '..', '..', 'docs', 'asyncapi.yaml'));

  const avro = AvroSchemaParser();
  const avroFormats = new Set(avro.getMimeTypes());
  const parser = new Parser();
  parser.registerSchemaParser(avro);

  let output;
  try {
    output = await fromFile(parser, documentPath).parse();
  } catch (error) {
    // fromFile reads the file before parsing: a missing document throws instead of diagnosing.
    report(ERROR, 'read', documentPath, error.message);
    return 1;
  }
  const { document, diagnostics } = output;
  let errors = 0;
  for (const diagnostic of diagnostics) {
    const firstLine = String(diagnostic.message).split('\n', 1)[0];
    report(diagnostic.severity, diagnostic.code, diagnosticLocation(diagnostic), firstLine);
    if (diagnostic.severity === ERROR) errors += 1;
  }
  if (document === undefined) {
    if (errors === 0) report(ERROR, 'no-document', documentPath, 'the parser returned no document');
    return 1;
  }

  const fail = (code, where, message) => {
    report(ERROR, code, where, message);
    errors += 1;
  };

  const channels = [];
  for (const channel of document.channels()) {
    const where = `channels/${channel.id()}`;
    const kafka = channel.bindings().get('kafka')?.value() ?? {};
    const messages = [];
    for (const message of channel.messages()) {
      const at = `${where}/messages/${message.id()}`;
      const schemaFormat = message.schemaFormat();
      if (!parser.parserRegistry.has(schemaFormat)) {
        fail('schema-format', at, `no schema parser registered for "${schemaFormat}"; the payload would go unchecked`);
        continue;
      }
      const payload = message.json().payload ?? {};
      let described = null;
      if (avroFormats.has(schemaFormat)) {
        const original = payload[ORIGINAL_PAYLOAD];
        if (original === undefined || typeof original !== 'object') {
          fail('avro', at, 'the Avro schema parser did not parse this payload');
          continue;
        }
        for (const problem of await avro.validate({ data: original, path: at.split('/') })) {
          fail('avro-schema', at, problem.message);
        }
        described = {
          name: avroFullName(original),
          fields: Array.isArray(original.fields) ? original.fields.map((field) => field.name) : null,
        };
      }
      const key = message.bindings().get('kafka')?.value()?.key;
      messages.push({
        name: message.name() ?? null,
        schemaFormat,
        contentType: message.contentType() ?? null,
        keyType: key?.type ?? null,
        payload: described,
      });
    }
    channels.push({
      id: channel.id(),
      address: channel.address(),
      partitions: kafka.partitions ?? null,
      topicConfiguration: kafka.topicConfiguration ?? null,
      messages,
    });
  }
  const operations = document.operations().all().map((operation) => ({
    id: operation.id(),
    action: operation.action(),
    channel: operation.channels().all().map((channel) => channel.address()),
  }));

  if (errors > 0) {
    process.stderr.write(`${documentPath}: ${errors} error(s)\n`);
    return 1;
  }
  const summary = {
    document: documentPath,
    asyncapi: document.version(),
    version: document.info().version(),
    channels,
    operations,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return 0;
}

process.exitCode = await main();
