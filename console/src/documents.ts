/** Every operation the console sends: the public GraphQL API, nothing else. */

export interface ProjectionStatus {
  name: string;
  status: string;
  position: string;
  lag: number;
  progress: number | null;
  error: string | null;
  failedPosition: string | null;
  updatedAt: string | null;
  parked?: number;
}

const STATUS_FIELDS = 'name status position lag progress error failedPosition updatedAt';

export const PROJECTIONS = `query ConsoleProjections { projections { ${STATUS_FIELDS} parked } }`;
/** For a service without parking (no `parked` field): the same, without it. */
export const PROJECTIONS_UNPARKED = `query ConsoleProjectionsUnparked { projections { ${STATUS_FIELDS} } }`;

export interface ParkedEvent {
  projection: string;
  position: string;
  streamId: string;
  eventType: string;
  error: string;
  attempts: number;
  parkedAt: string;
}

export const PARKED_EVENTS = `query ConsoleParkedEvents {
  parkedEvents { projection position streamId eventType error attempts parkedAt }
}`;

export const LIVE_STATS = 'query ConsoleLiveStats { liveStats { subscribers bufferedEvents } }';

export const REBUILD = `mutation ConsoleRebuild($name: String!) {
  rebuildProjection(name: $name) { name status progress }
}`;

export interface VerifyResult {
  name: string;
  ok: boolean;
  differences: number;
  position: string;
  rows: number;
  summary: string;
}

export const VERIFY = `mutation ConsoleVerify($name: String!) {
  verifyProjection(name: $name) { name ok differences position rows summary }
}`;

export const RETRY_PARKED = `mutation ConsoleRetryParked($projection: String!) {
  retryParked(projection: $projection) { name status }
}`;

export const SKIP_PARKED = `mutation ConsoleSkipParked($projection: String!, $position: Position!) {
  skipParked(projection: $projection, position: $position) { name status }
}`;

export interface Event {
  position: string;
  streamId: string;
  streamType: string;
  version: number;
  type: string;
  data: unknown;
  recordedAt: string;
}

const EVENT_FIELDS = 'position streamId streamType version type data recordedAt';

export const TAIL = `subscription ConsoleTail($after: Position, $streamId: ID, $streamType: String, $types: [String!]) {
  events(after: $after, streamId: $streamId, streamType: $streamType, types: $types) { ${EVENT_FIELDS} }
}`;

export const STREAM_EVENTS = `query ConsoleStreamEvents($streamId: ID!, $after: Position, $first: Int) {
  events(streamId: $streamId, after: $after, first: $first) { ${EVENT_FIELDS} }
}`;

export interface AggregateState {
  streamId: string;
  streamType: string;
  version: number;
  state: unknown;
}

export const AGGREGATE_STATE = `query ConsoleAggregateState($streamId: ID!, $version: Int) {
  aggregateState(streamId: $streamId, version: $version) { streamId streamType version state }
}`;
