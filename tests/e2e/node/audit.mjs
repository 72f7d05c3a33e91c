// The GraphQL-over-HTTP spec's own conformance suite (graphql-http's auditServer) against a
// running server: `node audit.mjs http://127.0.0.1:PORT/graphql` prints every audit's result as
// one JSON array ({id, name, status, reason}); the Python test judges them.
import { auditServer } from "graphql-http";

const url = process.argv[2];
if (!url) {
  console.error("usage: node audit.mjs URL");
  process.exit(2);
}
const results = await auditServer({ url });
const report = await Promise.all(
  results.map(async (result) => ({
    id: result.id,
    name: result.name,
    status: result.status,
    reason: result.status === "ok" ? null : result.reason,
    response:
      result.status === "ok"
        ? null
        : {
            status: result.response.status,
            contentType: result.response.headers.get("content-type"),
            body: await result.response.text().catch(() => null),
          },
  })),
);
console.log(JSON.stringify(report));
