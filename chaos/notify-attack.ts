// The NOTIFY-queue attack, shared by chaos/notify-queue.ts and test/notify-queue.test.ts: a listener
// that sits in an open transaction pins PostgreSQL's notification queue, and a second session
// fills it with notifications of almost a page each (8 KB pages: one notification per page).
import type pg from 'pg';

export const attackChannel = 'pin';
const pagePayload = 'x'.repeat(7_900);

/** LISTENs, then opens a transaction and stays in it: from now on the queue's tail cannot pass it. */
export async function pinQueue(session: pg.Client): Promise<void> {
  await session.query(`listen ${attackChannel}`);
  await session.query('begin');
  await session.query('select 1');
}

/**
 * Sends page-sized notifications until PostgreSQL refuses one with "too many notifications in the
 * NOTIFY queue" (resolves with how many went in) or, given `most`, after that many.
 */
export async function fillQueue(
  filler: pg.Client,
  most = Number.POSITIVE_INFINITY,
): Promise<{ sent: number; full: boolean }> {
  let sent = 0;
  while (sent < most) {
    try {
      await filler.query('select pg_notify($1, $2)', [attackChannel, pagePayload]);
    } catch (error) {
      if (error instanceof Error && /too many notifications in the NOTIFY queue/.test(error.message))
        return { sent, full: true };
      throw error;
    }
    sent += 1;
  }
  return { sent, full: false };
}

/** Resolves when `session`'s connection ends (ended by the server: the watchdog, or by us). */
export function sessionEnded(session: pg.Client): Promise<void> {
  return new Promise((resolve) => {
    session.on('error', () => {});
    session.once('end', () => resolve());
  });
}
