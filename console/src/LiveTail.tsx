import { useEffect, useRef, useState, type FormEvent } from 'react';
import { describe, type Api } from './api';
import { TAIL, type Event } from './documents';

const KEPT = 200;

interface Filters {
  streamType: string;
  types: string;
  streamId: string;
}

const NO_FILTERS: Filters = { streamType: '', types: '', streamId: '' };

function variables(filters: Filters, after: string | null): Record<string, unknown> {
  const types = filters.types
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  return {
    after,
    streamType: filters.streamType.trim() || null,
    streamId: filters.streamId.trim() || null,
    types: types.length ? types : null,
  };
}

/**
 * The event log as it is written: the `events` subscription with its filters. Pausing ends
 * the subscription; resuming starts it again with `after` the last position shown, so the
 * service sends every event written meanwhile, then live, with no gap and no duplicate.
 */
export function LiveTail({ api }: { api: Api }) {
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [paused, setPaused] = useState(false);
  const [events, setEvents] = useState<Event[]>([]);
  const [error, setError] = useState<string | null>(null);
  const last = useRef<string | null>(null);

  useEffect(() => {
    if (paused) return;
    setError(null);
    return api.subscribe<{ events: Event }>(TAIL, variables(filters, last.current), {
      next(answer) {
        const event = answer.data?.events;
        if (!event) {
          setError(describe(answer.errors));
          return;
        }
        last.current = event.position;
        setEvents((shown) => [event, ...shown].slice(0, KEPT));
      },
      error: setError,
    });
  }, [api, filters, paused]);

  function apply(submitted: FormEvent) {
    submitted.preventDefault();
    // New filters start from now: what the old ones showed stays above.
    last.current = null;
    setEvents([]);
    setFilters(draft);
  }

  return (
    <section className="panel" aria-labelledby="tail">
      <h2 id="tail">Live tail</h2>
      <form className="filters" onSubmit={apply}>
        <label>
          Stream type
          <input
            name="streamType"
            value={draft.streamType}
            placeholder="Order"
            onChange={(e) => setDraft({ ...draft, streamType: e.target.value })}
          />
        </label>
        <label>
          Event types
          <input
            name="types"
            value={draft.types}
            placeholder="OrderPlaced, OrderConfirmed"
            onChange={(e) => setDraft({ ...draft, types: e.target.value })}
          />
        </label>
        <label>
          Stream id
          <input
            name="streamId"
            value={draft.streamId}
            onChange={(e) => setDraft({ ...draft, streamId: e.target.value })}
          />
        </label>
        <button type="submit">Apply filters</button>
        <button type="button" className="pause" onClick={() => setPaused(!paused)}>
          {paused ? 'Resume' : 'Pause'}
        </button>
        <span className={`tail-state ${paused ? 'paused' : 'live'}`}>
          {paused ? `paused after ${last.current ?? 'the start'}` : 'live'}
        </span>
      </form>
      {error && <p className="error">{error}</p>}
      <table className="tail">
        <thead>
          <tr>
            <th className="number">Position</th>
            <th>Type</th>
            <th>Stream</th>
            <th className="number">Version</th>
            <th>Data</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.position} data-position={e.position}>
              <td className="number">{e.position}</td>
              <td>{e.type}</td>
              <td className="mono">
                {e.streamType} {e.streamId}
              </td>
              <td className="number">{e.version}</td>
              <td>
                <div className="mono data">{JSON.stringify(e.data)}</div>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
