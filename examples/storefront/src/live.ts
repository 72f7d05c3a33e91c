import { createContext, useContext, useEffect, useState } from 'react';
import { useMutation, type CombinedError, type TypedDocumentNode } from 'urql';
import type { CommandResult } from './documents';

/** Bumped each time the socket comes back after a drop: subscriptions started "from now"
 * may have missed events meanwhile, so whatever they keep fresh is read again. */
export const Reloads = createContext(0);

/** Calls `reload` after every reconnect (not on the first connection). */
export function useReloadAfterReconnect(reload: () => void): void {
  const reloads = useContext(Reloads);
  useEffect(() => {
    if (reloads > 0) reload();
    // Only a new reconnect counts, not a new `reload` function on each render.
  }, [reloads]);
}

/** The newest of several copies of one read model (a query's answer, a subscription's push),
 * by version: whichever arrived last over the network is not necessarily the newest. */
export function newest<T extends { version: number }>(
  ...copies: (T | null | undefined)[]
): T | undefined {
  let best: T | undefined;
  for (const copy of copies) if (copy && (!best || copy.version > best.version)) best = copy;
  return best;
}

/**
 * Sends a command mutation. `run` resolves to the CommandResult (its `position` is what a
 * following query passes as `minPosition` to read the write), or to undefined after showing
 * the refusal, whose GraphQL error code says why (VALIDATION_FAILED, RULE_VIOLATED, ...).
 */
export function useCommand<Name extends string, Input>(
  document: TypedDocumentNode<Record<Name, CommandResult>, { input: Input }>,
): [
  run: (input: Input) => Promise<CommandResult | undefined>,
  error: string | null,
  busy: boolean,
] {
  const [state, execute] = useMutation(document);
  const [error, setError] = useState<string | null>(null);
  async function run(input: Input): Promise<CommandResult | undefined> {
    setError(null);
    const result = await execute({ input });
    if (result.error || !result.data) {
      setError(describe(result.error));
      return undefined;
    }
    return Object.values<CommandResult>(result.data)[0];
  }
  return [run, error, state.fetching];
}

/** A CombinedError as a person reads it: each GraphQL error's message and code. */
export function describe(error: CombinedError | undefined): string {
  if (!error) return 'no answer';
  if (error.networkError) {
    // A websocket's failure arrives as a browser event, with no message: its CloseEvent (a
    // code), or the error event of a handshake refused (the browser tells the page no more).
    const cause: { message?: string; code?: number } = error.networkError;
    const reason =
      cause.message ||
      (cause.code ? `the connection closed (${cause.code})` : 'the websocket could not connect');
    return `the service cannot be reached: ${reason}`;
  }
  return error.graphQLErrors
    .map((e) => (e.extensions?.code ? `${e.message} (${String(e.extensions.code)})` : e.message))
    .join('; ');
}

export const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });

export function dollars(cents: number): string {
  return money.format(cents / 100);
}
