// Runs the GraphQL-over-HTTP audit suite (graphql-http's auditServer) against a GraphQL
// endpoint and prints every result. Exits 1 if any result is not "ok": errors (MUST),
// warnings (SHOULD) and notices alike, so a regression of any recommendation fails.
//
//   npm ci && node audit.mjs http://127.0.0.1:8080/graphql
//
// server/graphql_http_test.go runs it against the real handler.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql endpoint URL>');
  process.exit(2);
}

const results = await auditServer({ url });
const counts = {};
for (const r of results) {
  counts[r.status] = (counts[r.status] || 0) + 1;
}
for (const r of results) {
  if (r.status === 'ok') {
    console.log(`ok     ${r.id} ${r.name}`);
    continue;
  }
  let body = '';
  try {
    body = await r.response.text();
  } catch {
    // the body was already read by the audit
  }
  console.log(`${r.status.padEnd(6)} ${r.id} ${r.name}`);
  console.log(`       reason: ${r.reason}`);
  console.log(`       response: ${r.response.status} ${r.response.headers.get('content-type') ?? ''} ${body.slice(0, 300)}`);
}
const summary = ['ok', 'notice', 'warn', 'error'].map((s) => `${counts[s] || 0} ${s}`).join(', ');
console.log(`graphql-http audit of ${url}: ${results.length} audits: ${summary}`);
process.exit(results.every((r) => r.status === 'ok') ? 0 : 1);
