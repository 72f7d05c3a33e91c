import { useEffect, useState, type FormEvent } from 'react';
import { Api, describe } from './api';
import { LIVE_STATS } from './documents';
import { LiveTail } from './LiveTail';
import { usePolling } from './polling';
import { ReadModels } from './ReadModels';
import { StreamBrowser } from './StreamBrowser';

interface LiveStats {
  subscribers: number;
  bufferedEvents: number;
}

export function App() {
  const [token, setToken] = useState('');
  const [api, setApi] = useState(() => new Api(''));
  const [stats, setStats] = useState<LiveStats | null>(null);
  const [refused, setRefused] = useState<string | null>(null);

  useEffect(() => () => api.dispose(), [api]);

  // liveStats is for admins: its answer says whether the admin's buttons are shown.
  usePolling(
    async () => {
      const answer = await api.request<{ liveStats: LiveStats }>(LIVE_STATS);
      setStats(answer.data?.liveStats ?? null);
      setRefused(answer.data ? null : describe(answer.errors));
    },
    () => 1000,
    api,
  );

  function applyToken(submitted: FormEvent) {
    submitted.preventDefault();
    setApi(new Api(token.trim()));
  }

  const isAdmin = stats !== null;
  return (
    <>
      <header>
        <h1>Chronicle console</h1>
        <form className="token" onSubmit={applyToken}>
          <label>
            Token
            <input
              type="password"
              name="token"
              value={token}
              placeholder="open mode: none needed"
              autoComplete="off"
              onChange={(e) => setToken(e.target.value)}
            />
          </label>
          <button type="submit">Use token</button>
        </form>
        <div className="live-stats" aria-label="live subscribers">
          {stats ? (
            <>
              <span className="subscribers">{stats.subscribers}</span> live subscribers,{' '}
              <span className="buffered">{stats.bufferedEvents}</span> buffered events
            </>
          ) : (
            <span className="muted">{refused ?? '…'}</span>
          )}
        </div>
      </header>
      <main>
        <ReadModels api={api} isAdmin={isAdmin} />
        <LiveTail api={api} />
        <StreamBrowser api={api} />
      </main>
    </>
  );
}
