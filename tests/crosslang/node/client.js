#!/usr/bin/env node
// A Node.js client of mesh-adapter, built the way a Node user would build one:
// @grpc/grpc-js with the service definitions loaded at run time from protos/
// (and the googleapis protos in third_party/) by @grpc/proto-loader. Rich error
// details are decoded from the `grpc-status-details-bin` trailer with protobufjs
// and google/rpc/{status,error_details}.proto, vendored in ./third_party/.
//
//   node client.js --addr 127.0.0.1:50051 list-devices
//
// Prints one JSON object on stdout for tests/crosslang/test_crosslang.py. A
// scenario that cannot run prints the cause on stderr and exits with 1; an RPC
// error that a scenario expects is part of its JSON result.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const REPO = path.resolve(__dirname, '..', '..', '..');
const PROTOS = path.join(REPO, 'protos');
const THIRD_PARTY = path.join(REPO, 'third_party');
// google/rpc/*.proto, verbatim from googleapis (see third_party/README.md here).
const RPC_PROTOS = path.join(__dirname, 'third_party');

// --- loading the API from protos/ --------------------------------------------

function protoFiles(dir) {
  return fs
    .readdirSync(dir, { recursive: true })
    .filter((name) => name.endsWith('.proto'))
    .map((name) => name.split(path.sep).join('/'))
    .sort();
}

function loadApi() {
  const definition = protoLoader.loadSync(protoFiles(PROTOS), {
    includeDirs: [PROTOS, THIRD_PARTY],
    keepCase: true, // field names as in the .proto files: page_token, next_page_token
    longs: String,
    enums: String, // 'SEVERITY_HIGH'
    defaults: false,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition);
}

// google.rpc.Status and the error detail messages, to decode the trailer.
function loadRichErrorTypes() {
  const root = new protobuf.Root();
  // google/protobuf/*.proto are protobufjs built-ins; the rest come from RPC_PROTOS.
  root.resolvePath = (_origin, target) => path.join(RPC_PROTOS, target);
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  return root;
}

// --- google.protobuf.Struct, which proto-loader leaves in its wire shape ------
// Surprise: the well-known types come from protobufjs's built-in definitions,
// whose field names are camelCase (boolValue, listValue) even with keepCase.
// A snake_case key there is silently dropped and the Value goes out empty (null).

function toValue(v) {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  switch (typeof v) {
    case 'boolean':
      return { boolValue: v };
    case 'number':
      return { numberValue: v };
    case 'string':
      return { stringValue: v };
    case 'object':
      return { structValue: toStruct(v) };
    default:
      throw new TypeError(`no google.protobuf.Value for ${typeof v}`);
  }
}

function toStruct(obj) {
  return { fields: Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, toValue(v)])) };
}

function fromValue(v) {
  switch (v.kind) {
    case 'nullValue':
      return null;
    case 'listValue':
      return (v.listValue.values || []).map(fromValue);
    case 'structValue':
      return fromStruct(v.structValue);
    case 'boolValue':
    case 'numberValue':
    case 'stringValue':
      return v[v.kind];
    default:
      throw new TypeError(`google.protobuf.Value without a known kind: ${JSON.stringify(v)}`);
  }
}

function fromStruct(s) {
  if (!s) return s;
  return Object.fromEntries(Object.entries(s.fields || {}).map(([k, v]) => [k, fromValue(v)]));
}

// --- calls -----------------------------------------------------------------------

function codeName(code) {
  return Object.keys(grpc.status).find((name) => grpc.status[name] === code) || String(code);
}

// One unary call as a promise, with a deadline `ms` from now.
function unary(client, method, request, ms) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + ms }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

// The google.rpc.Status of a failed call, its details unpacked by type.
function richStatus(err, errorTypes) {
  const [raw] = err.metadata.get('grpc-status-details-bin');
  if (!raw) return null;
  const Status = errorTypes.lookupType('google.rpc.Status');
  const status = Status.decode(raw);
  const convert = { longs: String, enums: String, defaults: false };
  return {
    code: codeName(status.code),
    message: status.message,
    details: status.details.map((any) => {
      const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
      const type = errorTypes.lookupType(typeName); // throws on a type we do not know
      return { type: typeName, value: type.toObject(type.decode(any.value), convert) };
    }),
  };
}

// --- scenarios -------------------------------------------------------------------

async function listDevices({ api, channel, opts }) {
  const devices = new api.openframe.v1.DeviceService(null, null, { channelOverride: channel });
  const ids = [];
  const pageSizes = [];
  let token = '';
  for (let page = 1; page <= 100; page++) {
    const resp = await unary(
      devices,
      'ListDevices',
      { page_size: opts.pageSize, page_token: token },
      opts.timeoutMs,
    );
    const items = resp.devices || [];
    ids.push(...items.map((d) => d.id));
    pageSizes.push(items.length);
    token = resp.next_page_token || '';
    if (!token) return { ids, page_sizes: pageSizes };
  }
  throw new Error('paging did not end after 100 pages');
}

function pipelineJson(p) {
  return {
    ...p,
    transformations: (p.transformations || []).map((t) => ({ ...t, parameters: fromStruct(t.parameters) })),
  };
}

async function pipeline({ api, channel, opts }) {
  const pipelines = new api.octospine.v1.PipelineService(null, null, { channelOverride: channel });
  const created = await unary(
    pipelines,
    'CreatePipeline',
    {
      pipeline: {
        name: 'node client pipeline',
        source: {
          type: 'api',
          endpoint: 'https://source.example/node',
          authentication: { type: 'bearer', token: 'node-source-token' },
        },
        transformations: [
          { type: 'clean', parameters: toStruct({ removeNulls: true, maxNullRatio: 0.25 }) },
          {
            type: 'enrich',
            parameters: toStruct({
              enrichments: ['geolocation', 'company'],
              fallback: { country: 'unknown', confidence: 0, note: null },
            }),
          },
        ],
        destination: { type: 'database', table: 'node_processed' },
      },
    },
    opts.timeoutMs,
  );
  const got = await unary(pipelines, 'GetPipeline', { pipeline_id: created.id }, opts.timeoutMs);
  return { created: pipelineJson(created), got: pipelineJson(got) };
}

function alertJson(a) {
  return { ...a, metadata: fromStruct(a.metadata) };
}

// Creates an alert with a request_id (sent twice: the second answer must be the
// first one replayed), reads it back, then resolves it with an update_mask
// naming only `status`.
async function alertLifecycle({ api, channel, opts }) {
  const alerts = new api.openframe.v1.AlertService(null, null, { channelOverride: channel });
  const create = {
    alert: {
      title: 'node client alert',
      severity: 'SEVERITY_HIGH',
      device_id: 'dev_001',
      description: 'created by tests/crosslang/node',
      metadata: toStruct({ client: 'node', checks: ['disk', 2], ticket: null }),
    },
    request_id: `crosslang-node-${process.pid}-${Date.now()}`,
  };
  const created = await unary(alerts, 'CreateAlert', create, opts.timeoutMs);
  const replayed = await unary(alerts, 'CreateAlert', create, opts.timeoutMs);
  const got = await unary(alerts, 'GetAlert', { alert_id: created.id }, opts.timeoutMs);
  const updated = await unary(
    alerts,
    'UpdateAlert',
    {
      // The title is set but not masked: it must not reach the upstream.
      alert: { id: created.id, status: 'ALERT_STATUS_RESOLVED', title: 'not sent' },
      update_mask: { paths: ['status'] },
    },
    opts.timeoutMs,
  );
  return {
    request_id: create.request_id,
    created: alertJson(created),
    replayed: alertJson(replayed),
    got: alertJson(got),
    got_equals_created: JSON.stringify(got) === JSON.stringify(created),
    updated: alertJson(updated),
  };
}

// A call expected to fail; its code and rich details.
async function failedCall(client, method, request, opts, errorTypes) {
  try {
    await unary(client, method, request, opts.timeoutMs);
  } catch (err) {
    if (err.code === undefined || !err.metadata) throw err;
    return { code: codeName(err.code), message: err.details, status: richStatus(err, errorTypes) };
  }
  throw new Error(`${method} succeeded where it should fail`);
}

async function notFoundError({ api, channel, opts }) {
  const alerts = new api.openframe.v1.AlertService(null, null, { channelOverride: channel });
  const missing = 'alt_missing_crosslang_node';
  return {
    alert_id: missing,
    ...(await failedCall(alerts, 'GetAlert', { alert_id: missing }, opts, loadRichErrorTypes())),
  };
}

async function invalidArgument({ api, channel, opts }) {
  const alerts = new api.openframe.v1.AlertService(null, null, { channelOverride: channel });
  // No title: the upstream rejects it, the adapter names the caller's field.
  const request = { alert: { severity: 'SEVERITY_LOW', device_id: 'dev_001' } };
  return failedCall(alerts, 'CreateAlert', request, opts, loadRichErrorTypes());
}

async function deadline({ api, channel, opts }) {
  const devices = new api.openframe.v1.DeviceService(null, null, { channelOverride: channel });
  const start = process.hrtime.bigint();
  let code = 'OK';
  try {
    await unary(devices, 'ListDevices', {}, opts.deadlineMs);
  } catch (err) {
    if (err.code === undefined) throw err;
    code = codeName(err.code);
  }
  const elapsedMs = Number((process.hrtime.bigint() - start) / 1000000n);
  return { code, deadline_ms: opts.deadlineMs, elapsed_ms: elapsedMs };
}

const SCENARIOS = {
  'list-devices': listDevices,
  pipeline,
  'alert-lifecycle': alertLifecycle,
  error: notFoundError,
  'invalid-argument': invalidArgument,
  deadline,
};

// --- command line ------------------------------------------------------------------

async function main() {
  const usage = `usage: client.js --addr HOST:PORT [--timeout-ms N] [--deadline-ms N] [--page-size N] SCENARIO
scenarios: ${Object.keys(SCENARIOS).sort().join(', ')}`;
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        addr: { type: 'string' },
        'timeout-ms': { type: 'string', default: '10000' },
        'deadline-ms': { type: 'string', default: '300' },
        'page-size': { type: 'string', default: '7' },
      },
    });
  } catch (err) {
    console.error(`${err.message}\n${usage}`);
    return 2;
  }
  const { values, positionals } = args;
  const run = SCENARIOS[positionals[0]];
  if (!values.addr || positionals.length !== 1 || !run) {
    console.error(usage);
    return 2;
  }
  const opts = {
    timeoutMs: Number(values['timeout-ms']),
    deadlineMs: Number(values['deadline-ms']),
    pageSize: Number(values['page-size']),
  };
  const api = loadApi();
  // One channel shared by every service client; never through an HTTP proxy.
  const channel = new grpc.Channel(values.addr, grpc.credentials.createInsecure(), {
    'grpc.enable_http_proxy': 0,
  });
  try {
    const result = await run({ api, channel, opts });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (err) {
    console.error(`${positionals[0]}: ${err.stack || err}`);
    return 1;
  } finally {
    channel.close();
  }
}

main().then((code) => {
  process.exitCode = code;
});
