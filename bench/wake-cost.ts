import { setTimeout as sleep } from 'node:timers/promises';
import { HostClient } from '../src/db/hosts.ts';

export interface WakeCost {
  /** Client CPU (user + system) of one `select 1`, in microseconds, sent as soon as the last answered. */
  backToBackUs: number;
  /** The same with the process idle for 10 ms before each: what a worker pays per wake-up. */
  afterIdleUs: number;
}

/**
 * What one query costs this process's CPU, busy and after a short idle. On the 2-core VMs these
 * figures come from, a query after 10 ms idle cost 3-5x one sent back to back (cold caches, the
 * scheduler, the hypervisor): a command stream that wakes every process every 10 ms (the latency
 * phase) pays that per wake-up, which is why it costs more CPU per command than a full queue.
 */
export async function wakeCost(url: string): Promise<WakeCost> {
  const client = new HostClient({ connectionString: url, application_name: 'pg-billing-bench-probe' });
  await client.connect();
  try {
    const cpuPerQuery = async (count: number, idleMs: number) => {
      for (let i = 0; i < 50; i++) await client.query('select 1');
      let cpu = 0;
      for (let i = 0; i < count; i++) {
        if (idleMs) await sleep(idleMs);
        const before = process.cpuUsage();
        await client.query('select 1');
        const used = process.cpuUsage(before);
        cpu += used.user + used.system;
      }
      return cpu / count;
    };
    return { backToBackUs: await cpuPerQuery(2_000, 0), afterIdleUs: await cpuPerQuery(200, 10) };
  } finally {
    await client.end();
  }
}
