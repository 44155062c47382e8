import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from './context.ts';

/**
 * Runs one of the project's own scripts with this Node, the caller's stdio and arguments; resolves
 * with its exit code.
 */
export function runScript(script: string, args: string[]): Promise<number> {
  const file = path.join(projectRoot, script);
  if (!existsSync(file)) {
    // bench/ and chaos/ are not in the npm package: they run from a checkout of the repository.
    console.error(`billing: ${script} is not part of this installation; run it from a checkout of the repository`);
    return Promise.resolve(1);
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { stdio: 'inherit' });
    // The child gets the terminal's Ctrl-C itself (passing it on would make it two); a SIGTERM
    // (a supervisor, `kill`) is for this process alone, so it is passed on.
    const ignore = () => {};
    const forward = () => child.kill('SIGTERM');
    process.on('SIGINT', ignore);
    process.on('SIGTERM', forward);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      process.off('SIGINT', ignore);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal ? 128 + (signalNumbers[signal] ?? 0) : 1));
    });
  });
}

const signalNumbers: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
