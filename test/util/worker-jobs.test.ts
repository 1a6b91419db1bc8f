/**
 * WorkerJobs' lifetime of its thread: one that exits when idle ends after each run of jobs,
 * at once or, with a linger, only after staying idle that long (a job meanwhile keeps it).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { WorkerJobs } from '../../src/util/worker-jobs.ts';

const ECHO = new URL('./echo-worker.ts', import.meta.url);

describe('WorkerJobs', () => {
  it('exits when idle: each job after the last one ended runs on a new thread', async () => {
    const jobs = new WorkerJobs<object, number>(ECHO, 'echo', { exitWhenIdle: true });
    const first = await jobs.run({});
    const second = await jobs.run({});
    expect(second).not.toBe(first);
  });

  it('lingers: jobs within the linger share the thread, a job after it gets a new one', async () => {
    const jobs = new WorkerJobs<object, number>(ECHO, 'echo', { exitWhenIdle: true, lingerMs: 400 });
    const first = await jobs.run({});
    await sleep(100);
    const second = await jobs.run({});
    await sleep(100);
    // Each job restarts the linger: 200 ms after the first, the thread is still the same.
    expect(await jobs.run({})).toBe(first);
    expect(second).toBe(first);
    await sleep(1_000);
    expect(await jobs.run({})).not.toBe(first);
  });
});
