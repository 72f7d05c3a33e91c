import { createClient, type Client } from 'graphql-ws';

/** Where the API is: /graphql on the console's own origin, over HTTP and a websocket. */
export function apiUrls(page: Location = window.location): { http: string; ws: string } {
  const http = new URL('/graphql', page.href);
  const ws = new URL(http);
  ws.protocol = http.protocol === 'https:' ? 'wss:' : 'ws:';
  return { http: http.href, ws: ws.href };
}

export interface GraphQLError {
  message: string;
  extensions?: { code?: string };
}

export interface Answer<T> {
  data?: T | null;
  errors?: GraphQLError[];
}

/** A person's reading of a request's errors: each message with its code. */
export function describe(errors: GraphQLError[] | undefined): string {
  return (errors ?? [])
    .map((e) => (e.extensions?.code ? `${e.message} (${e.extensions.code})` : e.message))
    .join('; ');
}

/**
 * The console's connection to the service: queries and mutations over HTTP, subscriptions
 * over one graphql-ws socket. A token goes in `Authorization: Bearer` on every request and in
 * the socket's `connection_init` payload, as the service reads it; open mode needs none.
 */
export class Api {
  readonly token: string;
  private sockets: Client | null = null;

  constructor(token: string) {
    this.token = token;
  }

  private get authorization(): Record<string, string> {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  /** One operation over HTTP. `Accept: application/json` makes a refused request a 200 with
   * its errors in the body (not a 4xx), so a refusal is an answer to show, not a fault. */
  async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<Answer<T>> {
    let response: Response;
    try {
      response = await fetch(apiUrls().http, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json',
          ...this.authorization,
        },
        body: JSON.stringify({ query, variables }),
      });
    } catch (error) {
      return { errors: [{ message: `the service cannot be reached: ${String(error)}` }] };
    }
    try {
      return (await response.json()) as Answer<T>;
    } catch {
      return { errors: [{ message: `the service answered ${response.status}` }] };
    }
  }

  /** Subscribe; returns the function that ends the subscription. */
  subscribe<T>(
    query: string,
    variables: Record<string, unknown>,
    sink: { next: (answer: Answer<T>) => void; error: (message: string) => void },
  ): () => void {
    this.sockets ??= createClient({
      url: apiUrls().ws,
      connectionParams: this.authorization,
      retryAttempts: 20,
      lazy: true,
    });
    return this.sockets.subscribe<T>(
      { query, variables },
      {
        next: (answer) => sink.next(answer as Answer<T>),
        error: (error) => sink.error(errorText(error)),
        complete: () => undefined,
      },
    );
  }

  /** Close the socket: call it before replacing this Api with one of another token. */
  dispose(): void {
    void this.sockets?.dispose();
    this.sockets = null;
  }
}

function errorText(error: unknown): string {
  if (Array.isArray(error)) return describe(error as GraphQLError[]);
  if (error instanceof CloseEvent) return `the socket closed (${error.code} ${error.reason})`;
  if (error instanceof Error) return error.message;
  return 'the socket failed';
}
