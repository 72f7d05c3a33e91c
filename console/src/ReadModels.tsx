import { useState } from 'react';
import { describe, type Api } from './api';
import {
  PARKED_EVENTS,
  PROJECTIONS,
  PROJECTIONS_UNPARKED,
  REBUILD,
  RETRY_PARKED,
  SKIP_PARKED,
  VERIFY,
  type ParkedEvent,
  type ProjectionStatus,
  type VerifyResult,
} from './documents';
import { usePolling } from './polling';

const EVERY = 1000;
/** While a rebuild runs its progress is read more often, so it is seen moving. */
const EVERY_WHILE_REBUILDING = 250;

/**
 * The read models (and the fulfilment process) with status, position, lag, rebuild progress
 * and parked events, read again every second; for admins, buttons to rebuild, verify, retry
 * the parked events of one, and skip one parked event.
 */
export function ReadModels({ api, isAdmin }: { api: Api; isAdmin: boolean }) {
  const [statuses, setStatuses] = useState<ProjectionStatus[]>([]);
  const [parked, setParked] = useState<ParkedEvent[]>([]);
  const [parking, setParking] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<string | null>(null);
  const [verified, setVerified] = useState<VerifyResult | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  async function read() {
    let answer = await api.request<{ projections: ProjectionStatus[] }>(
      parking ? PROJECTIONS : PROJECTIONS_UNPARKED,
    );
    if (parking && !answer.data && describe(answer.errors).includes('parked')) {
      // A service without parking: read without it from now on.
      setParking(false);
      answer = await api.request(PROJECTIONS_UNPARKED);
    }
    if (!answer.data) {
      setError(describe(answer.errors));
      return;
    }
    setError(null);
    setStatuses(answer.data.projections);
    const anyParked = answer.data.projections.some((s) => (s.parked ?? 0) > 0);
    if (isAdmin && parking && (anyParked || parked.length > 0)) {
      const list = await api.request<{ parkedEvents: ParkedEvent[] }>(PARKED_EVENTS);
      setParked(list.data?.parkedEvents ?? []);
    }
  }

  usePolling(
    read,
    () => (statuses.some((s) => s.status === 'rebuilding') ? EVERY_WHILE_REBUILDING : EVERY),
    `${api.token}|${isAdmin}|${parking}`,
  );

  async function act<T>(
    label: string,
    document: string,
    variables: Record<string, unknown>,
    done: (data: T) => string,
  ) {
    setBusy(label);
    setOutcome(null);
    const answer = await api.request<T>(document, variables);
    setBusy(null);
    setOutcome(answer.data ? done(answer.data) : `${label}: ${describe(answer.errors)}`);
    await read();
  }

  function verify(name: string) {
    setVerified(null);
    return act<{ verifyProjection: VerifyResult }>(
      `verify ${name}`,
      VERIFY,
      { name },
      ({ verifyProjection: result }) => {
        setVerified(result);
        return result.ok
          ? `${name} verified: matches a replay of the log (${result.rows} rows at position ${result.position})`
          : `${name} drifted: ${result.differences} ${result.differences === 1 ? 'row differs' : 'rows differ'}`;
      },
    );
  }

  return (
    <section className="panel" aria-labelledby="read-models">
      <h2 id="read-models">Read models</h2>
      {error && <p className="error">{error}</p>}
      <table className="read-models">
        <thead>
          <tr>
            <th>Name</th>
            <th>Status</th>
            <th className="number">Position</th>
            <th className="number">Lag</th>
            {parking && <th className="number">Parked</th>}
            <th>Rebuild</th>
            {isAdmin && <th>Actions</th>}
          </tr>
        </thead>
        <tbody>
          {statuses.map((s) => (
            <tr key={s.name} data-projection={s.name} data-status={s.status}>
              <td>{s.name}</td>
              <td>
                <span className={`status ${s.status}`}>{s.status}</span>
                {s.error && <div className="error small">{s.error}</div>}
              </td>
              <td className="number position">{s.position}</td>
              <td className="number lag">{s.lag}</td>
              {parking && <td className="number parked">{s.parked ?? 0}</td>}
              <td className="progress-cell">
                {s.progress !== null && <Progress value={s.progress} />}
              </td>
              {isAdmin && (
                <td className="actions">
                  {s.name !== 'fulfilment' && (
                    <>
                      <button
                        type="button"
                        disabled={s.status === 'rebuilding' || busy !== null}
                        onClick={() =>
                          act(`rebuild ${s.name}`, REBUILD, { name: s.name }, () =>
                            `rebuilding ${s.name}`,
                          )
                        }
                      >
                        Rebuild
                      </button>
                      <button type="button" disabled={busy !== null} onClick={() => verify(s.name)}>
                        Verify
                      </button>
                    </>
                  )}
                  {parking && (s.parked ?? 0) > 0 && (
                    <button
                      type="button"
                      disabled={busy !== null}
                      onClick={() =>
                        act(`retry ${s.name}`, RETRY_PARKED, { projection: s.name }, () =>
                          `retrying the parked events of ${s.name}`,
                        )
                      }
                    >
                      Retry parked
                    </button>
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {busy && <p className="busy">{busy}…</p>}
      {outcome && <p className="outcome">{outcome}</p>}
      {verified && !verified.ok && <pre className="drift">{verified.summary}</pre>}
      {isAdmin && parked.length > 0 && (
        <>
          <h3>Parked events</h3>
          <table className="parked-events">
            <thead>
              <tr>
                <th>Read model</th>
                <th className="number">Position</th>
                <th>Stream</th>
                <th>Type</th>
                <th>Error</th>
                <th className="number">Attempts</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {parked.map((p) => (
                <tr key={`${p.projection}@${p.position}`} data-parked={`${p.projection}@${p.position}`}>
                  <td>{p.projection}</td>
                  <td className="number">{p.position}</td>
                  <td className="mono">{p.streamId}</td>
                  <td>{p.eventType}</td>
                  <td className="error small">{p.error}</td>
                  <td className="number">{p.attempts}</td>
                  <td>
                    <button
                      type="button"
                      disabled={busy !== null}
                      onClick={() =>
                        act(
                          `skip ${p.projection} ${p.position}`,
                          SKIP_PARKED,
                          { projection: p.projection, position: p.position },
                          () => `skipped the event at ${p.position} for ${p.projection}`,
                        )
                      }
                    >
                      Skip
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}

function Progress({ value }: { value: number }) {
  const percent = Math.floor(value * 100);
  return (
    <span className="progress">
      <progress max={100} value={percent} aria-label="rebuild progress" />
      <span className="percent">{percent}%</span>
    </span>
  );
}
