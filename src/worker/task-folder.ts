import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { TaskList } from 'graphile-worker';
import { declarations } from '../commands/command.ts';
import { taskPrefix } from '../commands/contract.ts';
import type { CommandTaskDeps, CommandTaskFactory } from './command-task.ts';

/**
 * The command tasks' folder, one file per command (`tasks/billing/credit.ts` is the task
 * `billing/credit`). Found from this file, so that it is the same folder from a checkout, from
 * `bin/billing.js` and in the Docker image (all of which keep `src/` and `tasks/` side by side).
 */
export const commandTaskFolder = fileURLToPath(new URL('../../tasks/billing/', import.meta.url));

/** A task folder that does not match the declarations: the worker does not start. */
export class TaskFolderError extends Error {
  override name = 'TaskFolderError';
}

/**
 * Imports every `<type>.ts` of the folder and checks it against the declarations
 * (src/commands/command.ts) both ways: a declared command without its file, a file that names no
 * declared command, or a file whose factory is not `commandTaskFactory('<its name>')` is an error
 * that names the file, so a command added without its task file fails at the worker's start.
 * Returns the factories by task name (`billing/credit`).
 */
export async function loadCommandTaskFactories(
  folder: string = commandTaskFolder,
): Promise<Map<string, CommandTaskFactory>> {
  const declared = declarations.map((declaration) => declaration.task as string);
  const entries = await readdir(folder, { withFileTypes: true }).catch((error: unknown) => {
    throw new TaskFolderError(`cannot read the command task folder ${folder}: ${String(error)}`);
  });
  const names = entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts'))
    .map((entry) => entry.name.slice(0, -'.ts'.length))
    .sort();
  const problems: string[] = [];
  for (const task of declared)
    if (!names.includes(task))
      problems.push(
        `the declared command ${task} has no task file: add ${path.join(folder, `${task}.ts`)} ` +
          `with \`export default commandTaskFactory('${task}')\``,
      );
  for (const name of names)
    if (!declared.includes(name))
      problems.push(
        `${path.join(folder, `${name}.ts`)} names no declared command (declared: ${declared.join(', ')}): ` +
          `declare it in src/commands/command.ts or remove the file`,
      );
  if (problems.length > 0)
    throw new TaskFolderError(`command task folder does not match the declarations: ${problems.join('; ')}`);

  const factories = new Map<string, CommandTaskFactory>();
  for (const name of names) {
    const file = path.join(folder, `${name}.ts`);
    const { default: factory } = (await import(pathToFileURL(file).href)) as { default?: unknown };
    if (typeof factory !== 'function' || (factory as Partial<CommandTaskFactory>).task !== name)
      throw new TaskFolderError(`${file} must \`export default commandTaskFactory('${name}')\``);
    factories.set(`${taskPrefix}${name}`, factory as CommandTaskFactory);
  }
  return factories;
}

/** graphile-worker's task list of one worker: each factory called with that worker's dependencies. */
export function makeCommandTaskList(factories: Map<string, CommandTaskFactory>, deps: CommandTaskDeps): TaskList {
  return Object.fromEntries([...factories].map(([name, factory]) => [name, factory(deps)]));
}
