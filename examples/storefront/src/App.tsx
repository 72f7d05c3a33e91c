import { useEffect, useState } from 'react';
import { Provider } from 'urql';
import { Account } from './Account';
import { apiUrls, createApi, type Api, type Connection } from './client';
import type { User } from './documents';
import { Feed } from './Feed';
import { Reloads } from './live';
import { OrderPanel } from './OrderPanel';
import { Products } from './Products';
import { TokenField } from './TokenField';

const TOKEN_KEY = 'chronicle-storefront.token';
const USER_KEY = 'chronicle-storefront.user';

function stored<T>(key: string, fallback: T): T {
  const text = localStorage.getItem(key);
  return text === null ? fallback : (JSON.parse(text) as T);
}

export function App() {
  const [token, setToken] = useState(() => stored(TOKEN_KEY, ''));
  const [user, setUser] = useState<User | null>(() => stored(USER_KEY, null));
  const [order, setOrder] = useState<{ id: string; position: string } | null>(null);
  const [connection, setConnection] = useState<Connection>('connecting');
  const [reloads, setReloads] = useState(0);

  // One client per token: a new token means a new websocket with a new connection_init. Made
  // in an effect, so the one disposed is always the one the effect made (React's StrictMode
  // runs effects twice in development).
  const [api, setApi] = useState<Api>();
  useEffect(() => {
    let current = true; // the closing of a replaced client's socket is no news
    const made = createApi(token, (state, afterDrop) => {
      if (!current) return;
      setConnection(state);
      if (afterDrop) setReloads((n) => n + 1);
    });
    setApi(made);
    return () => {
      current = false;
      made.dispose();
    };
  }, [token]);
  useEffect(() => localStorage.setItem(TOKEN_KEY, JSON.stringify(token)), [token]);
  useEffect(() => localStorage.setItem(USER_KEY, JSON.stringify(user)), [user]);

  if (!api) return null;
  return (
    <Provider value={api.client}>
      <Reloads.Provider value={reloads}>
        <header>
          <h1>Chronicle storefront</h1>
          <span className="api" data-testid="api" title="The API this page calls (?api=)">
            {apiUrls().http}
          </span>
          <span className={`connection ${connection}`} data-testid="connection">
            {connection}
          </span>
          <TokenField token={token} onChange={setToken} />
        </header>
        <main>
          {/* The client's own token: `token` changes a render before the client does. */}
          <Account user={user} onUser={setUser} token={api.token} />
          <Products
            order={order}
            onOrderPosition={(position) => order && setOrder({ ...order, position })}
          />
          <OrderPanel user={user} order={order} onOrder={setOrder} />
          <Feed user={user} />
        </main>
      </Reloads.Provider>
    </Provider>
  );
}
