// A subscription over HTTP the way a browser app makes it: Apollo Client's HttpLink, which
// speaks the multipart subscription protocol (Accept: multipart/mixed;subscriptionSpec=1.0).
//
//   node subscribe.mjs '{"url": ..., "query": ..., "variables": {...}, "headers": {...}}'
//
// prints one JSON line per thing that happens: {"ready": true} once the request is sent,
// {"next": <data>} per result, {"error": {...}} if the subscription fails, {"complete": true}
// when it ends; then exits. Its standard input closing (the test is done) unsubscribes.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";

const { url, query, variables = {}, headers = {} } = JSON.parse(process.argv[2]);
const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const client = new ApolloClient({
  link: new HttpLink({ uri: url, headers }),
  cache: new InMemoryCache(),
});

const describe = (error) => ({
  name: error?.name ?? null,
  message: String(error?.message ?? error),
  errors: error?.errors ?? null,
  statusCode: error?.statusCode ?? null,
  bodyText: error?.bodyText ?? null,
});

const subscription = client
  .subscribe({ query: gql(query), variables, fetchPolicy: "no-cache" })
  .subscribe({
    next(result) {
      if (result.error) {
        say({ error: describe(result.error) });
      } else {
        say({ next: result.data });
      }
    },
    error(error) {
      say({ error: describe(error) });
      process.exit(0);
    },
    complete() {
      say({ complete: true });
      process.exit(0);
    },
  });
say({ ready: true });

process.stdin.resume();
process.stdin.on("end", () => {
  subscription.unsubscribe();
  process.exit(0);
});
