/** What the reaper knows about one registered id: is the session that registered it still there? */
export interface RegistrationState {
  id: string;
  /**
   * `alive`: the registering backend (pid and backend_start) is in pg_stat_activity; `dead`: it is
   * not; `unknown`: its pid is there but we may not see its backend_start (missing privilege).
   */
  session: 'alive' | 'dead' | 'unknown';
}

export interface LockerInfo {
  lockedBy: string;
  oldestLockedAt: Date;
  jobs: number;
}

export interface DeadIdDecision {
  /** Registered ids whose session is gone: unlock their jobs and drop their rows. */
  dead: string[];
  /** Never-registered ids holding jobs longer than the grace: unlock like graphile-worker would. */
  expiredUnregistered: string[];
  /** Ids we cannot judge (never registered and within the grace, or session not visible): left alone. */
  unknown: string[];
}

/** graphile-worker's own limit for a locked job (hard-coded in its getJobs SQL). */
export const UNREGISTERED_GRACE_MS = 4 * 60 * 60 * 1000;

/** The decision, without I/O. */
export function pickDeadIds(input: {
  lockers: readonly LockerInfo[];
  registrations: readonly RegistrationState[];
  now: Date;
}): DeadIdDecision {
  const registered = new Set(input.registrations.map((r) => r.id));
  const dead = input.registrations.filter((r) => r.session === 'dead').map((r) => r.id);
  const unknown = input.registrations.filter((r) => r.session === 'unknown').map((r) => r.id);
  const expiredUnregistered: string[] = [];
  for (const l of input.lockers) {
    if (registered.has(l.lockedBy)) continue;
    if (input.now.getTime() - l.oldestLockedAt.getTime() > UNREGISTERED_GRACE_MS) expiredUnregistered.push(l.lockedBy);
    else unknown.push(l.lockedBy);
  }
  return { dead: [...new Set(dead)].sort(), expiredUnregistered: expiredUnregistered.sort(), unknown: unknown.sort() };
}
