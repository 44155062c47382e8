import type { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Job } from 'graphile-worker';

/** How often a worker holding fetched jobs it has not started looks for jobs that rank ahead of them. */
export const jumpCheckMs = 100;

/** Most jobs one look takes ahead of the held ones (a few logins' lone commands; payloads up to 64 KiB each). */
export const jumpLimit = 50;

/**
 * Puts one fetch's jobs in the order get_jobs chose them (priority, run_at, id): its `update ...
 * returning` hands them back in no defined order, and graphile-worker's local queue starts them in
 * the order they came back. Sorted in place, in the `localQueue:getJobs:complete` event, which
 * graphile-worker 0.18 emits with the array it then hands out.
 */
export function orderFetchedJobs(jobs: Job[]): void {
  jobs.sort(
    (x, y) =>
      x.priority - y.priority ||
      new Date(x.run_at).getTime() - new Date(y.run_at).getTime() ||
      x.id.length - y.id.length ||
      (x.id < y.id ? -1 : x.id > y.id ? 1 : 0),
  );
}

/** What this module reads of graphile-worker 0.18's LocalQueue (all public in its typings). */
interface LocalQueueView {
  readonly mode: string;
  /** Fetched jobs not yet started, handed out from the front. */
  readonly jobQueue: Job[];
  readonly fetchInProgress: boolean;
  readonly workerPool: { readonly id: string };
}

function isLocalQueue(queue: unknown): queue is LocalQueueView {
  const q = queue as Partial<Record<keyof LocalQueueView, unknown>> | undefined;
  return (
    typeof q?.mode === 'string' &&
    Array.isArray(q.jobQueue) &&
    typeof q.fetchInProgress === 'boolean' &&
    typeof (q.workerPool as { id?: unknown } | undefined)?.id === 'string'
  );
}

export interface FairFetch {
  /** Looks now (a job was inserted: graphile-worker's wake-up), or again after a look in flight. */
  wake(): void;
  /** Stops looking; resolves once a look in flight has put its jobs in the local queue or back. */
  stop(): Promise<void>;
}

/**
 * Fairness between logins inside one worker process (SPEC guarantee 8). sql/0018_fair_queue.sql
 * gives a job a priority that grows with its login's backlog, and get_jobs fetches by priority; but
 * graphile-worker's local queue fetches up to `localQueue.size` jobs at once and fetches again only
 * when it has handed every one of them out, so another login's command that arrived just after a
 * fetch of a burst waited in the table until this process had started the whole fetch.
 *
 * So while the local queue holds fetched jobs it has not started, at each wake-up (`jobs:insert`)
 * and every `jumpCheckMs` (wake-ups are hints: any login can send or flood them) this process
 * locks the waiting jobs (at most `jumpLimit`) whose priority is numerically lower than that of the
 * first held job, exactly as get_jobs locks them (`for update skip locked`, under this pool's id, one
 * attempt counted), and puts them at the front of the local queue: the next task slot that frees
 * starts them. A burst of one login alone takes nothing this way (its later jobs never rank ahead
 * of its earlier ones). Jobs taken this way are the local queue's like any other: completed or
 * failed by graphile-worker, handed back on a graceful stop, and left locked under this pool's id
 * for the dead-worker reaper if the process dies.
 */
export function startFairFetch(options: {
  events: EventEmitter;
  pool: pg.Pool;
  /** The task identifiers this worker runs (graphile-worker's fetch takes only those). */
  tasks: readonly string[];
  onJump: (jobs: number) => void;
  onError: (error: unknown) => void;
  intervalMs?: number;
}): FairFetch {
  let queue: LocalQueueView | undefined;
  let inFlight: Promise<void> | undefined;
  let stopped = false;
  const onInit = ({ localQueue }: { localQueue: unknown }) => {
    if (isLocalQueue(localQueue)) queue = localQueue;
    else
      options.onError(
        new Error("graphile-worker's LocalQueue is not the one this was written for: no job goes ahead of a fetch"),
      );
  };
  const onFetched = ({ jobs }: { jobs: Job[] }) => orderFetchedJobs(jobs);
  options.events.on('localQueue:init', onInit);
  options.events.on('localQueue:getJobs:complete', onFetched);

  // In WAITING mode graphile-worker hands out jobQueue from the front and fetches nothing.
  const holding = (q: LocalQueueView) => q.mode === 'WAITING' && !q.fetchInProgress && q.jobQueue.length > 0;

  const look = async () => {
    const q = queue;
    if (stopped || !q || !holding(q)) return;
    const poolId = q.workerPool.id;
    try {
      // get_jobs' own statement (graphile-worker 0.18, no named queues), below the first job held:
      // an index probe on jobs_main_index (priority, run_at) where is_available.
      const { rows } = await options.pool.query<Job & { task_identifier: string }>(
        `with tasks as (
           select id, identifier from graphile_worker._private_tasks where identifier = any($3::text[])
         ), j as (
           select jobs.id
           from graphile_worker._private_jobs as jobs
           where jobs.is_available and jobs.priority < $2 and jobs.run_at <= now()
             and jobs.job_queue_id is null and jobs.task_id in (select id from tasks)
           order by jobs.priority, jobs.run_at
           limit ${jumpLimit}
           for update skip locked
         )
         update graphile_worker._private_jobs as jobs
         set attempts = jobs.attempts + 1, locked_by = $1::text, locked_at = now()
         from j, tasks
         where jobs.id = j.id and tasks.id = jobs.task_id
         returning jobs.*, tasks.identifier as task_identifier`,
        [poolId, q.jobQueue[0]!.priority, options.tasks],
      );
      if (rows.length === 0) return;
      orderFetchedJobs(rows);
      if (!stopped && q === queue && holding(q) && q.jobQueue[0]!.priority > rows[rows.length - 1]!.priority) {
        q.jobQueue.unshift(...rows);
        options.onJump(rows.length);
        return;
      }
      // The local queue moved on meanwhile (it ran dry and is fetching, or it stopped): these go
      // back as graphile-worker returns jobs, for the next fetch.
      await options.pool.query(
        `update graphile_worker._private_jobs
         set attempts = greatest(0, attempts - 1), locked_by = null, locked_at = null
         where id = any($2::bigint[]) and locked_by = $1::text`,
        [poolId, rows.map((job) => job.id)],
      );
    } catch (error) {
      if (!stopped) options.onError(error);
    }
  };
  let again = false;
  const start = () => {
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = look().finally(() => {
      inFlight = undefined;
      if (again && !stopped) {
        again = false;
        start();
      }
    });
  };
  const timer = setInterval(start, options.intervalMs ?? jumpCheckMs);
  timer.unref();
  return {
    wake: start,
    async stop() {
      stopped = true;
      clearInterval(timer);
      options.events.off('localQueue:init', onInit);
      options.events.off('localQueue:getJobs:complete', onFetched);
      while (inFlight) await inFlight;
    },
  };
}
