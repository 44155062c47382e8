// A worker whose clock is hours off, through libfaketime (LD_PRELOAD). Checked before use: the
// library must exist and a Node process under it must both see the shifted clock and run timers.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export type Faketime =
  { available: true; library: string; env: NodeJS.ProcessEnv; offsetMs: number } | { available: false; reason: string };

/** Where Debian/Ubuntu's libfaketime puts it (`apt-get install -y faketime`). The MT variant suits Node's threads. */
const candidates = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1',
  '/usr/lib/faketime/libfaketimeMT.so.1',
  '/usr/local/lib/faketime/libfaketimeMT.so.1',
];

export async function findFaketime(offset: string): Promise<Faketime> {
  const library = process.env.CHAOS_LIBFAKETIME ?? candidates.find((file) => existsSync(file));
  if (!library) return { available: false, reason: 'libfaketime not installed (apt-get install -y faketime)' };
  // Only the wall clock is shifted: timers and timeouts run on the monotonic clock, as they should.
  const env = { LD_PRELOAD: library, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1', FAKETIME_NO_CACHE: '1' };
  try {
    const before = Date.now();
    const out = execFileSync(process.execPath, ['-e', 'setTimeout(() => console.log(Date.now()), 50)'], {
      env: { ...process.env, ...env },
      timeout: 10_000,
      encoding: 'utf8',
    });
    const offsetMs = Number(out.trim()) - before;
    if (!Number.isFinite(offsetMs) || Math.abs(offsetMs) < 60_000) {
      return { available: false, reason: `${library} loaded but Node's clock moved only ${offsetMs} ms` };
    }
    return { available: true, library, env, offsetMs };
  } catch (error) {
    return { available: false, reason: `Node under ${library} failed: ${(error as Error).message}` };
  }
}
