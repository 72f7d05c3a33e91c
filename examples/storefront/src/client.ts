import { createClient as createWsClient } from 'graphql-ws';
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from 'urql';

/**
 * Where the API is, over HTTP and over a websocket (`ws:` for `http:`, `wss:` for `https:`, same
 * host and path). By default `/graphql` on the page's own origin: the service serving the app, or
 * a vite dev server proxying that path to it (vite.config.ts). `?api=<url>` points the page at a
 * service on another origin without a rebuild (`?api=http://127.0.0.1:8000/graphql`); that
 * service must list the page's origin in CHRONICLE_ALLOWED_ORIGINS, for HTTP (CORS) and for
 * websockets alike. A bearer token goes wherever `api` points.
 */
export function apiUrls(page: Location = window.location): { http: string; ws: string } {
  const chosen = new URLSearchParams(page.search).get('api') || '/graphql';
  const http = new URL(chosen, page.href);
  if (http.protocol !== 'http:' && http.protocol !== 'https:') {
    throw new Error(`?api= must be an http: or https: URL, not ${chosen}`);
  }
  const ws = new URL(http);
  ws.protocol = http.protocol === 'https:' ? 'wss:' : 'ws:';
  return { http: http.href, ws: ws.href };
}

export type Connection = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface Api {
  client: Client;
  /** The token this client sends, or '' for none. */
  token: string;
  /** Closes the websocket: call it before making a client with another token. */
  dispose: () => void;
}

/**
 * One urql client: queries and mutations over HTTP, subscriptions over one graphql-ws
 * (graphql-transport-ws) socket, opened on the first subscription.
 *
 * A token, when given, goes in `Authorization: Bearer` on every HTTP request and in the
 * socket's `connection_init` payload, as the service reads it. Without one the service must be
 * in open mode (the default locally), where every caller may do everything.
 *
 * `onConnection` hears the socket's state. After a drop (the service restarting closes sockets
 * with 1012) graphql-ws reconnects and subscribes again, but subscriptions that start "from
 * now" may have missed events meanwhile: `afterDrop` tells the app to read its data again.
 */
export function createApi(
  token: string,
  onConnection: (state: Connection, afterDrop: boolean) => void,
): Api {
  const urls = apiUrls();
  const authorization = token ? `Bearer ${token}` : undefined;
  const sockets = createWsClient({
    url: urls.ws,
    connectionParams: authorization ? { Authorization: authorization } : {},
    retryAttempts: 20,
    on: {
      connecting: (isRetry) => onConnection(isRetry ? 'reconnecting' : 'connecting', false),
      connected: (_socket, _payload, wasRetry) => onConnection('live', wasRetry),
      closed: () => onConnection('closed', false),
    },
  });
  const client = new Client({
    url: urls.http,
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const operation = { ...request, query: request.query ?? '' };
          return {
            subscribe(sink) {
              return { unsubscribe: sockets.subscribe(operation, sink) };
            },
          };
        },
      }),
    ],
    fetchOptions: () => (authorization ? { headers: { Authorization: authorization } } : {}),
    // Reads here are of live data: show the cached answer at once, and ask the service again.
    requestPolicy: 'cache-and-network',
  });
  return { client, token, dispose: () => void sockets.dispose() };
}
