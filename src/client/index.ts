/**
 * `usagedb/client`: a client of the usagedb HTTP API that runs wherever `fetch` does (Node,
 * browsers, edge runtimes): no Node-only import.
 *
 * `track(event)` buffers events into batches, sent when a batch is full or
 * `flushIntervalMs` after its first event. Every request is retried with exponential backoff
 * and full jitter on network errors, timeouts, 429 and 5xx: safe, because `event_id` makes a
 * resent event a counted duplicate, never a second charge. Per-event problems (rejected,
 * conflict) are reported to `onError` as they arrive and returned by `flush()`.
 */
import type {
  BatchEventError,
  BatchResult,
  ClosedPeriod,
  EventLookup,
  EventsPage,
  EventsParams,
  Explanation,
  Health,
  JsonQuery,
  JsonQueryResult,
  OpenPeriod,
  Period,
  RangeParams,
  RejectionsPage,
  RejectionsParams,
  SqlResult,
  UsageEventInput,
  UsageParams,
  UsageResult,
  VerifyResult,
} from './types.ts';

export type * from './types.ts';

export interface UsageDbClientOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:8080. */
  url: string;
  apiKey?: string;
  /** Events per batch (the server's limit is 10,000 by default). Default 1,000. */
  batchSize?: number;
  /** A partly filled batch is sent this long after its first event. Default 1,000 ms. */
  flushIntervalMs?: number;
  /** Batches sent at once (concurrent batches share the server's fsyncs). Default 2. */
  concurrency?: number;
  /** Retries after the first attempt of a request. Default 8. */
  maxRetries?: number;
  /** Backoff: attempt n waits a random time in [0, min(retryMaxMs, retryBaseMs * 2^n)). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Time allowed to one attempt. Default 30,000 ms. */
  timeoutMs?: number;
  /**
   * Events held (buffered, queued or being sent) at most; `track` throws past it, so a long
   * outage pushes back on the caller instead of growing memory without bound. Default 100,000.
   */
  maxPendingEvents?: number;
  fetch?: typeof fetch;
  /** Called for each event the server rejected or found conflicting, and for each batch given up on. */
  onError?: (error: TrackError) => void;
}

/** An event the server did not store: rejected (invalid) or conflict (id reused with another payload). */
export interface EventError extends BatchEventError {
  event: UsageEventInput;
}

export type TrackError =
  | { kind: 'event'; error: EventError }
  | { kind: 'batch'; events: UsageEventInput[]; error: UsageDbClientError };

/** What the batches sent since the previous `flush()` did. */
export interface FlushResult {
  accepted: number;
  duplicates: number;
  conflicts: number;
  rejected: number;
  errors: EventError[];
  /** Batches given up on (retries exhausted, or refused as a whole): their events were not stored. */
  failed: { events: UsageEventInput[]; error: UsageDbClientError }[];
}

/** A request that failed: `status` 0 for a network error or timeout; `code` from the catalogue. */
export class UsageDbClientError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UsageDbClientError';
    this.status = status;
    this.code = code;
  }
}

/** 408: the server timed the request out before receiving it whole (nothing was ingested). */
const RETRYABLE_STATUS = (status: number) => status === 408 || status === 429 || status >= 500;

function emptyResult(): FlushResult {
  return { accepted: 0, duplicates: 0, conflicts: 0, rejected: 0, errors: [], failed: [] };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function query(params: Record<string, string | number | string[] | undefined>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    const text = Array.isArray(v) ? v.join(',') : String(v);
    parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(text)}`);
  }
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}

function periodPath(accountId: string, period: string): string {
  return `/v1/accounts/${encodeURIComponent(accountId)}/periods/${encodeURIComponent(period)}`;
}

export class UsageDbClient {
  private readonly base: string;
  private readonly apiKey: string | undefined;
  private readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly concurrency: number;
  private readonly maxRetries: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly timeoutMs: number;
  private readonly maxPendingEvents: number;
  private sendingEvents = 0;
  private readonly fetchImpl: typeof fetch;
  private readonly onError: ((error: TrackError) => void) | undefined;

  private buffer: UsageEventInput[] = [];
  private readonly queue: UsageEventInput[][] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private result: FlushResult = emptyResult();
  private closed = false;

  constructor(options: UsageDbClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
    this.apiKey = options.apiKey;
    this.batchSize = options.batchSize ?? 1_000;
    this.flushIntervalMs = options.flushIntervalMs ?? 1_000;
    this.concurrency = options.concurrency ?? 2;
    this.maxRetries = options.maxRetries ?? 8;
    this.retryBaseMs = options.retryBaseMs ?? 100;
    this.retryMaxMs = options.retryMaxMs ?? 10_000;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxPendingEvents = options.maxPendingEvents ?? 100_000;
    // Bound to globalThis: some runtimes refuse a fetch called as a method of another object.
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.onError = options.onError;
    for (const [name, v, min] of [
      ['batchSize', this.batchSize, 1],
      ['concurrency', this.concurrency, 1],
      ['maxRetries', this.maxRetries, 0],
      ['flushIntervalMs', this.flushIntervalMs, 0],
      ['maxPendingEvents', this.maxPendingEvents, 1],
    ] as const) {
      if (!Number.isInteger(v) || v < min)
        throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
    }
  }

  // ---------------------------------------------------------------- buffered ingest

  /** Buffers one event; it is sent with the next batch. */
  track(event: UsageEventInput): void {
    if (this.closed) throw new UsageDbClientError(0, 'USAGEDB_CLIENT_CLOSED', 'the client is closed');
    if (this.pendingEvents >= this.maxPendingEvents) {
      throw new UsageDbClientError(
        0,
        'USAGEDB_CLIENT_BACKPRESSURE',
        `${this.pendingEvents} events are waiting to be sent (maxPendingEvents); flush() and retry`,
      );
    }
    this.buffer.push(event);
    if (this.buffer.length >= this.batchSize) this.cutBatch();
    else if (this.timer === null) this.timer = setTimeout(() => this.cutBatch(), this.flushIntervalMs);
  }

  /** Sends every buffered event, waits for every batch, and returns what they did since the last flush. */
  async flush(): Promise<FlushResult> {
    this.cutBatch();
    while (this.inFlight.size > 0 || this.queue.length > 0) {
      this.pump();
      await Promise.all([...this.inFlight]);
    }
    const done = this.result;
    this.result = emptyResult();
    return done;
  }

  /** Flushes, then refuses further `track` calls. */
  async close(): Promise<FlushResult> {
    const r = await this.flush();
    this.closed = true;
    return r;
  }

  /** Events buffered, queued or in batches not yet answered. */
  get pendingEvents(): number {
    return this.buffer.length + this.queue.reduce((n, b) => n + b.length, 0) + this.sendingEvents;
  }

  private cutBatch(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.buffer.length > 0) this.queue.push(this.buffer.splice(0, this.batchSize));
    this.pump();
  }

  private pump(): void {
    while (this.inFlight.size < this.concurrency && this.queue.length > 0) {
      const batch = this.queue.shift() as UsageEventInput[];
      this.sendingEvents += batch.length;
      const p: Promise<void> = this.sendBatch(batch).finally(() => {
        this.sendingEvents -= batch.length;
        this.inFlight.delete(p);
        this.pump();
      });
      this.inFlight.add(p);
    }
  }

  private async sendBatch(events: UsageEventInput[]): Promise<void> {
    try {
      const r = await this.ingest(events);
      this.result.accepted += r.accepted;
      this.result.duplicates += r.duplicates;
      this.result.conflicts += r.conflicts;
      this.result.rejected += r.rejected;
      for (const e of r.errors) {
        const error: EventError = { ...e, event: events[e.index] };
        this.result.errors.push(error);
        this.report({ kind: 'event', error });
      }
    } catch (err) {
      const error =
        err instanceof UsageDbClientError
          ? err
          : new UsageDbClientError(0, 'USAGEDB_CLIENT_ERROR', String(err), { cause: err });
      this.result.failed.push({ events, error });
      this.report({ kind: 'batch', events, error });
    }
  }

  private report(error: TrackError): void {
    try {
      this.onError?.(error);
    } catch {
      // A throwing callback must not lose the results of other batches.
    }
  }

  // ---------------------------------------------------------------- routes

  /** POST /v1/usage/batch: one batch, now (retried like every request). */
  ingest(events: UsageEventInput[]): Promise<BatchResult> {
    return this.request<BatchResult>('POST', '/v1/usage/batch', { events });
  }

  /** GET /v1/accounts/{id}/usage: billing lines of one account. */
  usage(accountId: string, params: UsageParams): Promise<UsageResult> {
    return this.request<UsageResult>(
      'GET',
      `/v1/accounts/${encodeURIComponent(accountId)}/usage${query({ ...params })}`,
    );
  }

  /** GET /v1/accounts/{id}/usage/events: one page of the raw audit. */
  events(accountId: string, params: EventsParams): Promise<EventsPage> {
    return this.request<EventsPage>(
      'GET',
      `/v1/accounts/${encodeURIComponent(accountId)}/usage/events${query({ ...params })}`,
    );
  }

  /** Every page of the raw audit, one page per request. */
  async *allEvents(accountId: string, params: Omit<EventsParams, 'cursor'>): AsyncGenerator<EventsPage> {
    let cursor: string | undefined;
    do {
      const page = await this.events(accountId, { ...params, cursor });
      yield page;
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }

  /** POST /v1/query/json. */
  queryJson(q: JsonQuery): Promise<JsonQueryResult> {
    return this.request<JsonQueryResult>('POST', '/v1/query/json', q);
  }

  /** POST /v1/query/sql. */
  querySql(sql: string): Promise<SqlResult> {
    return this.request<SqlResult>('POST', '/v1/query/sql', { query: sql });
  }

  /** GET /v1/accounts/{id}/periods/{YYYY-MM}: open (live lines) or closed (frozen snapshot). */
  period(accountId: string, period: string): Promise<Period> {
    return this.request<Period>('GET', periodPath(accountId, period));
  }

  /** POST .../periods/{YYYY-MM}/close: freezes the snapshot (409 if already closed). */
  closePeriod(accountId: string, period: string): Promise<ClosedPeriod> {
    return this.request<ClosedPeriod>('POST', `${periodPath(accountId, period)}/close`);
  }

  /** POST .../periods/{YYYY-MM}/reopen: discards the snapshot (409 if open). */
  reopenPeriod(accountId: string, period: string): Promise<OpenPeriod> {
    return this.request<OpenPeriod>('POST', `${periodPath(accountId, period)}/reopen`);
  }

  /** GET /v1/accounts/{id}/explain: lines, provenance and the corrections that moved them. */
  explain(accountId: string, params: RangeParams): Promise<Explanation> {
    return this.request<Explanation>(
      'GET',
      `/v1/accounts/${encodeURIComponent(accountId)}/explain${query({ ...params })}`,
    );
  }

  /** GET /v1/accounts/{id}/verify: raw scan vs rollups per billing line. */
  verify(accountId: string, params: RangeParams): Promise<VerifyResult> {
    return this.request<VerifyResult>(
      'GET',
      `/v1/accounts/${encodeURIComponent(accountId)}/verify${query({ ...params })}`,
    );
  }

  /** GET /v1/events/{event_id}: where an event is stored, or why it was not billed. */
  lookupEvent(eventId: string): Promise<EventLookup> {
    return this.request<EventLookup>('GET', `/v1/events/${encodeURIComponent(eventId)}`);
  }

  /** GET /v1/accounts/{id}/rejections: one page of the rejection log. */
  rejections(accountId: string, params: RejectionsParams = {}): Promise<RejectionsPage> {
    return this.request<RejectionsPage>(
      'GET',
      `/v1/accounts/${encodeURIComponent(accountId)}/rejections${query({ ...params })}`,
    );
  }

  health(): Promise<Health> {
    return this.request<Health>('GET', '/health');
  }

  /** GET /metrics: Prometheus text. */
  metrics(): Promise<string> {
    return this.request<string>('GET', '/metrics', undefined, 'text');
  }

  openApi(): Promise<Record<string, unknown>> {
    return this.request<Record<string, unknown>>('GET', '/openapi.json');
  }

  // ---------------------------------------------------------------- transport

  private backoffMs(attempt: number): number {
    // Full jitter: spreads the retries of many clients after an outage.
    return Math.random() * Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** attempt);
  }

  /** A server's `Retry-After` in seconds, capped at retryMaxMs; null when absent. */
  private retryAfterMs(response: Response): number | null {
    const text = response.headers.get('retry-after');
    if (text === null || !/^[0-9]+$/.test(text.trim())) return null;
    return Math.min(this.retryMaxMs, Number(text) * 1000);
  }

  private async request<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    as: 'json' | 'text' = 'json',
  ): Promise<T> {
    const headers: Record<string, string> = { accept: as === 'json' ? 'application/json' : 'text/plain' };
    if (this.apiKey !== undefined) headers.authorization = `Bearer ${this.apiKey}`;
    let payload: string | undefined;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await this.fetchImpl(`${this.base}${path}`, {
          method,
          headers,
          body: payload,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        if (attempt >= this.maxRetries) {
          throw new UsageDbClientError(
            0,
            'USAGEDB_CLIENT_NETWORK',
            `${method} ${path} failed: ${String(err)}`,
            {
              cause: err,
            },
          );
        }
        await sleep(this.backoffMs(attempt));
        continue;
      }
      if (response.ok) {
        return (as === 'json' ? await response.json() : await response.text()) as T;
      }
      const text = await response.text().catch(() => '');
      if (RETRYABLE_STATUS(response.status) && attempt < this.maxRetries) {
        await sleep(this.retryAfterMs(response) ?? this.backoffMs(attempt));
        continue;
      }
      let code = `HTTP_${response.status}`;
      let message = text.slice(0, 500);
      try {
        const e = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
        if (typeof e?.code === 'string') code = e.code;
        if (typeof e?.message === 'string') message = e.message;
      } catch {
        // Not the API's error shape (a proxy's page): keep the text.
      }
      throw new UsageDbClientError(response.status, code, message);
    }
  }
}
