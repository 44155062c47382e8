import { Command } from 'commander';
import type { BillingClient } from '../client/client.ts';
import { ResultTimeoutError } from '../client/errors.ts';
import type { CommandResult } from '../client/types.ts';
import { CliError, findDatabase, loadCliConfig, toJson } from './context.ts';
import { exitCodes } from './exit-codes.ts';
import { withExamples } from './help.ts';
import { formatResult } from './output.ts';
import { defaultTimeoutMs, parseWhole } from './submit-command.ts';

/**
 * The first pair of numbered accounts (1 and 2, else 3 and 4, ...) that do not exist yet: every run
 * starts from zero and shows the same four applied results and balances 666 and 111.
 */
async function freshPair(client: BillingClient): Promise<[string, string]> {
  for (let first = 1; ; first += 200) {
    const candidates = Array.from({ length: 200 }, (_, i) => String(first + i));
    const existing = await client.balances(candidates);
    for (let i = 0; i < candidates.length; i += 2) {
      const pair: [string, string] = [candidates[i]!, candidates[i + 1]!];
      if (!existing.has(pair[0]) && !existing.has(pair[1])) return pair;
    }
  }
}

export function demoCommand(): Command {
  const command = new Command('demo')
    .summary('the original task: accounts 1 and 2, credit 777, transfer 111')
    .description(
      'The original task: open accounts 1 and 2, credit 777 to 1, transfer 111 from 1 to 2; print the four ' +
        'results and the balances (666 and 111). Run it again and it says that 1 and 2 exist and uses the next free pair ' +
        '(3 and 4, ...), so every run starts from zero. Needs a running worker (npm start, or billing worker).',
    )
    .option('--json', 'print one JSON document (amounts as strings)')
    .option('--timeout <ms>', 'how long to wait for each result', parseWhole, defaultTimeoutMs)
    .action(async (options: { json?: boolean; timeout: number }) => {
      const { url } = await findDatabase(loadCliConfig());
      const { createBillingClient } = await import('../client/client.ts');
      const client = createBillingClient({ connectionString: url, timeoutMs: options.timeout });
      const say = (line: string) => {
        if (!options.json) console.log(line);
      };
      try {
        const [a, b] = await freshPair(client);
        if (a === '1') say('demo: accounts 1 and 2');
        else
          say(
            `demo: accounts 1 and 2 exist already (an earlier run?): this run uses accounts ${a} and ${b}, which start from zero`,
          );
        const run = Date.now().toString(36);
        const steps: [string, () => Promise<CommandResult>][] = [
          [`open account ${a}`, () => client.openAccount({ id: `demo-${run}-open-${a}`, account: a })],
          [`open account ${b}`, () => client.openAccount({ id: `demo-${run}-open-${b}`, account: b })],
          [`credit 777 to ${a}`, () => client.credit({ id: `demo-${run}-credit`, account: a, amount: 777n })],
          [
            `transfer 111 from ${a} to ${b}`,
            () => client.transfer({ id: `demo-${run}-transfer`, from: a, to: b, amount: 111n }),
          ],
        ];
        const results: CommandResult[] = [];
        for (const [index, [label, step]] of steps.entries()) {
          const result = await step();
          results.push(result);
          say(`${index + 1}. ${label.padEnd(26)} ${formatResult(result)}`);
        }
        const accounts = await client.balances([a, b]);
        const balanceOf = (account: string) => accounts.get(account)?.balance;
        say(`balances: ${a} = ${balanceOf(a) ?? 'missing'}, ${b} = ${balanceOf(b) ?? 'missing'}`);
        if (options.json) {
          console.log(toJson({ accounts: [a, b], results, balances: { [a]: balanceOf(a), [b]: balanceOf(b) } }));
        }
        const rejected = results.some((r) => r.status !== 'applied');
        const expected = balanceOf(a) === 666n && balanceOf(b) === 111n;
        process.exitCode = rejected ? exitCodes.rejected : expected ? exitCodes.ok : exitCodes.error;
      } catch (error) {
        if (error instanceof ResultTimeoutError) throw new CliError(error.message);
        throw error;
      } finally {
        await client.close();
      }
    });
  return withExamples(command, [
    'npm start          # in one terminal',
    'billing demo       # in another',
    'billing demo --json',
  ]);
}
