// `make check`: docs/asyncapi.yaml is a valid AsyncAPI document, every payload
// schema (protobuf, inline .proto text) compiles, and every message carries the
// CloudEvents headers. Exits 1 with the parser's diagnostics otherwise.
//
//   node scripts/asyncapi/validate.mjs [docs/asyncapi.yaml]
import { readFileSync } from 'node:fs';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';
import protobufSchemaParser from '@asyncapi/protobuf-schema-parser'; // CommonJS

const { ProtoBuffSchemaParser } = protobufSchemaParser;

const path = process.argv[2] ?? new URL('../../docs/asyncapi.yaml', import.meta.url).pathname;
const parser = new Parser();
parser.registerSchemaParser(ProtoBuffSchemaParser());
const { document, diagnostics } = await parser.parse(readFileSync(path, 'utf8'), { source: path });

const problems = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
for (const d of diagnostics) {
  const level = d.severity === DiagnosticSeverity.Error ? 'error' : 'warning';
  if (level === 'error' || process.env.ASYNCAPI_WARNINGS) {
    console.error(`${path}: ${level}: ${d.code}: ${d.message} at /${d.path.join('/')}`);
  }
}
if (!document || problems.length > 0) {
  console.error(`${path}: ${problems.length} error(s)`);
  process.exit(1);
}

let failures = 0;
const fail = (message) => {
  console.error(`${path}: ${message}`);
  failures += 1;
};
const messages = document.allMessages().all();
for (const message of messages) {
  const name = message.id();
  const payload = message.payload();
  if (!payload || payload.type() === undefined) fail(`${name}: no payload schema`);
  // A protobuf payload was compiled to a schema of its root message.
  if (name !== 'DeadLetter' && payload.type() !== 'object') fail(`${name}: the .proto payload did not compile`);
  const headers = message.headers()?.properties() ?? {};
  for (const header of ['ce_specversion', 'ce_id', 'ce_source', 'ce_type', 'content-type']) {
    if (!(header in headers)) fail(`${name}: no ${header} header`);
  }
}
const channels = document.channels().all();
if (channels.length === 0) fail('no channels');
if (failures > 0) process.exit(1);
console.log(`${path}: valid AsyncAPI ${document.version()}: ${channels.length} channels, ${messages.length} messages`);
