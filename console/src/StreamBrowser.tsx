import { useEffect, useState, type FormEvent } from 'react';
import { describe, type Api } from './api';
import { AGGREGATE_STATE, STREAM_EVENTS, type AggregateState, type Event } from './documents';

const PAGE = 50;

/** One stream: its events, a page at a time, and its state at any version (a slider over
 * `aggregateState(streamId, version)`). */
export function StreamBrowser({ api }: { api: Api }) {
  const [draft, setDraft] = useState('');
  const [streamId, setStreamId] = useState<string | null>(null);
  const [events, setEvents] = useState<Event[]>([]);
  const [more, setMore] = useState(false);
  const [latest, setLatest] = useState<AggregateState | null>(null);
  const [version, setVersion] = useState(0);
  const [state, setState] = useState<AggregateState | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function page(id: string, after: string | null) {
    const answer = await api.request<{ events: Event[] }>(STREAM_EVENTS, {
      streamId: id,
      after,
      first: PAGE,
    });
    if (!answer.data) {
      setError(describe(answer.errors));
      return;
    }
    const got = answer.data.events;
    setEvents((shown) => (after === null ? got : [...shown, ...got]));
    setMore(got.length === PAGE);
  }

  async function open(submitted: FormEvent) {
    submitted.preventDefault();
    const id = draft.trim();
    if (!id) return;
    setError(null);
    setStreamId(id);
    setEvents([]);
    setState(null);
    const answer = await api.request<{ aggregateState: AggregateState | null }>(AGGREGATE_STATE, {
      streamId: id,
    });
    const found = answer.data?.aggregateState ?? null;
    setLatest(found);
    if (!found) {
      setError(answer.errors ? describe(answer.errors) : `no stream ${id}`);
      return;
    }
    setVersion(found.version);
    setState(found);
    await page(id, null);
  }

  useEffect(() => {
    if (streamId === null || latest === null || version === state?.version) return;
    let current = true;
    void api
      .request<{ aggregateState: AggregateState | null }>(AGGREGATE_STATE, { streamId, version })
      .then((answer) => {
        if (!current) return;
        if (answer.data?.aggregateState) setState(answer.data.aggregateState);
        else setError(describe(answer.errors));
      });
    return () => {
      current = false;
    };
  }, [version]);

  return (
    <section className="panel" aria-labelledby="streams">
      <h2 id="streams">Stream browser</h2>
      <form className="filters" onSubmit={open}>
        <label>
          Stream id
          <input name="stream" value={draft} onChange={(e) => setDraft(e.target.value)} />
        </label>
        <button type="submit">Open stream</button>
      </form>
      {error && <p className="error">{error}</p>}
      {latest && streamId && (
        <div className="stream">
          <div className="state">
            <label className="slider">
              <span>
                Version <output className="version">{version}</output> of {latest.version}
              </span>
              <input
                type="range"
                name="version"
                min={1}
                max={latest.version}
                value={version}
                onChange={(e) => setVersion(Number(e.target.value))}
              />
            </label>
            <p>
              {latest.streamType} {streamId}
            </p>
            <pre className="aggregate-state" data-version={state?.version}>
              {state ? JSON.stringify(state.state, null, 2) : '…'}
            </pre>
          </div>
          <div className="events-pane">
            <table className="stream-events">
              <thead>
                <tr>
                  <th className="number">Version</th>
                  <th>Type</th>
                  <th className="number">Position</th>
                  <th>Recorded</th>
                  <th>Data</th>
                </tr>
              </thead>
              <tbody>
                {events.map((e) => (
                  <tr
                    key={e.position}
                    className={e.version === version ? 'current' : undefined}
                    onClick={() => setVersion(e.version)}
                  >
                    <td className="number">{e.version}</td>
                    <td>{e.type}</td>
                    <td className="number">{e.position}</td>
                    <td>{new Date(e.recordedAt).toLocaleString()}</td>
                    <td>
                      <div className="mono data">{JSON.stringify(e.data)}</div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {more && (
              <button
                type="button"
                onClick={() => page(streamId, events[events.length - 1].position)}
              >
                More events
              </button>
            )}
          </div>
        </div>
      )}
    </section>
  );
}
