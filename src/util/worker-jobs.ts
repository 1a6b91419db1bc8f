/**
 * One worker thread that answers jobs in order, for CPU work that must not stall the main
 * thread (segment encoding, compaction merges).
 *
 * Invariants: jobs are answered in order by a single worker; the worker is referenced exactly
 * while a job is pending (an idle worker never keeps the process alive); a crashed worker
 * fails its pending jobs and is replaced on the next job.
 */
import './detach-early.ts';
import { Worker } from 'node:worker_threads';

type Pending<R> = { resolve: (r: R) => void; reject: (e: Error) => void };
export type WorkerReply<R> =
  { jobId: number; ok: true; result: R } | { jobId: number; ok: false; message: string };

export class WorkerJobs<Request extends object, Result> {
  private readonly url: URL;
  private readonly what: string;
  private worker: Worker | null = null;
  private nextJobId = 1;
  private readonly pending = new Map<number, Pending<Result>>();

  private readonly exitWhenIdle: boolean;
  private readonly lingerMs: number;
  /** The timer that ends an idle worker after lingerMs (null: none armed). */
  private lingering: ReturnType<typeof setTimeout> | null = null;
  /** Holds taken by hold(): while any is open, an idle worker is kept (exitWhenIdle waits). */
  private holds = 0;

  /**
   * `what` names the work in errors ("segment encoding"). `exitWhenIdle`: end the worker once
   * no job is pending, giving its heap back (for rare, large jobs such as merges); after
   * `lingerMs` of idleness rather than at once, for jobs that come back every few seconds
   * (a thread started again each time compiles and optimises its code again). The linger is
   * wall-clock time: it decides when a thread's memory is given back, never a result.
   */
  constructor(url: URL, what: string, options: { exitWhenIdle?: boolean; lingerMs?: number } = {}) {
    this.url = url;
    this.what = what;
    this.exitWhenIdle = options.exitWhenIdle === true;
    this.lingerMs = options.lingerMs ?? 0;
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.worker = null;
  }

  private getWorker(): Worker {
    if (this.worker !== null) return this.worker;
    // A 16 MiB young generation: V8 sizes it from the machine's memory (far larger here), and
    // an encoding worker kept ~160 MiB of heap committed between jobs; with 16 it keeps ~70 MiB
    // for the same speed (measured over 1.5M events).
    const w = new Worker(this.url, { resourceLimits: { maxYoungGenerationSizeMb: 16 } });
    w.on('message', (reply: WorkerReply<Result>) => {
      const job = this.pending.get(reply.jobId);
      if (!job) return;
      this.pending.delete(reply.jobId);
      if (this.pending.size === 0) {
        w.unref();
        if (this.exitWhenIdle && this.holds === 0) this.retireWhenIdle(w);
      }
      if (reply.ok) job.resolve(reply.result);
      else job.reject(new Error(`${this.what} failed: ${reply.message}`));
    });
    w.on('error', (err) => this.failAll(err));
    w.on('exit', (code) => this.failAll(new Error(`${this.what} worker exited with code ${code}`)));
    // After the listeners: adding a 'message' listener refs the worker again.
    w.unref();
    this.worker = w;
    return w;
  }

  /** Retires `w` now, or once it has stayed idle for lingerMs. */
  private retireWhenIdle(w: Worker): void {
    if (this.lingerMs <= 0) {
      this.retire(w);
      return;
    }
    this.cancelLinger();
    this.lingering = setTimeout(() => {
      this.lingering = null;
      if (this.worker === w && this.pending.size === 0 && this.holds === 0) this.retire(w);
    }, this.lingerMs);
    this.lingering.unref();
  }

  private cancelLinger(): void {
    if (this.lingering === null) return;
    clearTimeout(this.lingering);
    this.lingering = null;
  }

  private retire(w: Worker): void {
    this.worker = null;
    w.removeAllListeners('exit');
    void w.terminate();
  }

  /**
   * Keeps the worker between jobs until the returned release is called (a run of jobs pays
   * the thread's start and its compilation once, not per job). Idempotent release.
   */
  hold(): () => void {
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      const w = this.worker;
      if (this.holds === 0 && this.exitWhenIdle && w !== null && this.pending.size === 0)
        this.retireWhenIdle(w);
    };
  }

  /** Runs one job; `transfer` lists buffers moved to the worker (the caller gives them up). */
  run(request: Request, transfer: ArrayBuffer[] = []): Promise<Result> {
    this.cancelLinger();
    const w = this.getWorker();
    const jobId = this.nextJobId++;
    return new Promise<Result>((resolve, reject) => {
      // Referenced only while a job is pending: an idle worker never keeps the process alive,
      // a busy one does (the caller is waiting for it).
      if (this.pending.size === 0) w.ref();
      this.pending.set(jobId, { resolve, reject });
      w.postMessage({ ...request, jobId }, transfer);
    });
  }
}
