import t from 'tap';
import type { CommandType } from '../src/commands/command.ts';
import { commandIdProblem } from '../src/commands/fields.ts';
import { readPayloadJson } from '../src/commands/json-text.ts';
import { wrongTypeCases } from './helpers/wrong-types.ts';
import { canonicalJson, fingerprintOf, maxPayloadBytes, parseCommand } from '../src/commands/parse.ts';

type Task = CommandType | 'expire_hold';
const parse = (task: Task, payload: unknown, requireId = false) =>
  parseCommand({ task, payload, defaultId: 'job:7', defaultCurrency: 'USD', requireId });

const nested = (depth: number): unknown => {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = { d: value };
  return value;
};

// [task, payload, the field the refusal names]
const refusals: [Task, unknown, string][] = [
  // missing and empty
  ['credit', { account: 'a' }, 'amount'],
  ['credit', { amount: '5' }, 'account'],
  ['credit', {}, 'account'],
  ['credit', { account: '', amount: '5' }, 'account'],
  ['credit', { id: '', account: 'a', amount: '5' }, 'id'],
  ['credit', { account: 'a', amount: '' }, 'amount'],
  ['transfer', { from: 'a', amount: '5' }, 'to'],
  ['capture', {}, 'hold'],
  ['release', { hold: '' }, 'hold'],
  // wrong types
  ['credit', { account: 5, amount: '5' }, 'account'],
  ['credit', { account: 'a', amount: true }, 'amount'],
  ['credit', { account: 'a', amount: null }, 'amount'],
  ['credit', { account: 'a', amount: {} }, 'amount'],
  ['credit', { account: 'a', amount: ['5'] }, 'amount'],
  ['credit', { id: 5, account: 'a', amount: '5' }, 'id'],
  ['open_account', { account: 'a', currency: 840 }, 'currency'],
  ['hold', { account: 'a', amount: '5', ttl_seconds: '60' }, 'ttl_seconds'],
  // amounts: negative, zero, fractional, exponent, hexadecimal, padded, signed, too large
  ['credit', { account: 'a', amount: '-5' }, 'amount'],
  ['credit', { account: 'a', amount: -5 }, 'amount'],
  ['credit', { account: 'a', amount: '0' }, 'amount'],
  ['credit', { account: 'a', amount: 0 }, 'amount'],
  ['credit', { account: 'a', amount: -0 }, 'amount'],
  ['credit', { account: 'a', amount: '1.5' }, 'amount'],
  ['credit', { account: 'a', amount: 1.5 }, 'amount'],
  ['credit', { account: 'a', amount: '5.0' }, 'amount'],
  ['credit', { account: 'a', amount: '1e3' }, 'amount'],
  ['credit', { account: 'a', amount: '0x10' }, 'amount'],
  ['credit', { account: 'a', amount: ' 5' }, 'amount'],
  ['credit', { account: 'a', amount: '5 ' }, 'amount'],
  ['credit', { account: 'a', amount: '05' }, 'amount'],
  ['credit', { account: 'a', amount: '+5' }, 'amount'],
  ['credit', { account: 'a', amount: '5_000' }, 'amount'],
  ['credit', { account: 'a', amount: '５' }, 'amount'],
  ['credit', { account: 'a', amount: 'Infinity' }, 'amount'],
  ['credit', { account: 'a', amount: Number.POSITIVE_INFINITY }, 'amount'],
  ['credit', { account: 'a', amount: Number.NaN }, 'amount'],
  ['credit', { account: 'a', amount: '9223372036854775808' }, 'amount'],
  ['credit', { account: 'a', amount: '9'.repeat(400) }, 'amount'],
  ['credit', { account: 'a', amount: 2 ** 53 }, 'amount'],
  ['credit', { account: 'a', amount: 1e20 }, 'amount'],
  ['capture', { hold: 'h', amount: '0' }, 'amount'],
  // account ids
  ['credit', { account: 'a'.repeat(65), amount: '5' }, 'account'],
  ['credit', { account: 'a\nb', amount: '5' }, 'account'],
  ['credit', { account: 'a\u0007', amount: '5' }, 'account'],
  ['credit', { account: "a'; drop table billing.accounts; --", amount: '5' }, 'account'],
  ['credit', { account: 'a b', amount: '5' }, 'account'],
  ['credit', { account: 'ä', amount: '5' }, 'account'],
  ['transfer', { from: 'a', to: 'b/c', amount: '5' }, 'to'],
  ['capture', { hold: 'h', to: 'x y' }, 'to'],
  ['credit', { id: 'x'.repeat(129), account: 'a', amount: '5' }, 'id'],
  ['release', { hold: 'h'.repeat(129) }, 'hold'],
  // unknown fields
  ['credit', { account: 'a', amount: '5', amout: '5' }, 'amout'],
  ['credit', JSON.parse('{"account":"a","amount":"5","__proto__":{"admin":true}}'), '__proto__'],
  ['credit', { account: 'a', amount: '5', constructor: 1 }, 'constructor'],
  ['release', { hold: 'h', amount: '5' }, 'amount'],
  ['expire_hold', { hold: 'h', extra: 1 }, 'extra'],
  // metadata
  ['credit', { account: 'a', amount: '5', metadata: { note: 'x'.repeat(4100) } }, 'metadata'],
  ['credit', { account: 'a', amount: '5', metadata: nested(9) }, 'metadata'],
  ['credit', { account: 'a', amount: '5', metadata: nested(10_000) }, 'metadata'],
  ['credit', { account: 'a', amount: '5', metadata: 'note' }, 'metadata'],
  ['credit', { account: 'a', amount: '5', metadata: null }, 'metadata'],
  ['credit', { account: 'a', amount: '5', metadata: [1] }, 'metadata'],
  ['credit', { account: 'a', amount: '5', nest: nested(10_000) }, 'nest'],
  // NUL and lone surrogates, in values and keys
  ['credit', { account: 'a\u0000', amount: '5' }, 'account'],
  ['credit', { account: 'a\uD800', amount: '5' }, 'account'],
  ['credit', { account: 'a', amount: '5\u0000' }, 'amount'],
  ['credit', { id: 'x\u0000', account: 'a', amount: '5' }, 'id'],
  ['credit', { 'acc\u0000ount': 'a', amount: '5' }, 'acc\uFFFDount'],
  // ... in metadata too, at any depth, in values and keys (issue 24, item 7)
  ['credit', { account: 'a', amount: '5', metadata: { note: 'a\u0000b' } }, 'metadata.note'],
  ['credit', { account: 'a', amount: '5', metadata: { list: [1, { deep: '\uDC00' }] } }, 'metadata.list.1.deep'],
  ['credit', { account: 'a', amount: '5', metadata: { a: { 'k\u0000': 1 } } }, 'metadata.a.k\uFFFD'],
  ['credit', { account: 'a', amount: '5', metadata: { '\uD83D': 1 } }, 'metadata.\uFFFD'],
  // ids longer than 128 characters (code points, as PostgreSQL counts them)
  ['credit', { id: '\u{1F600}'.repeat(129), account: 'a', amount: '5' }, 'id'],
  ['release', { hold: '\u{1F600}'.repeat(129) }, 'hold'],
  ['hold', { account: 'a', amount: '5', hold: 'h'.repeat(129) }, 'hold'],
  ['open_account', { account: '\u{1F600}'.repeat(64) }, 'account'],
  // not an object, too large
  ['credit', 'credit a 5', 'payload'],
  ['credit', 5, 'payload'],
  ['credit', null, 'payload'],
  ['credit', true, 'payload'],
  ['credit', ['a'], 'payload'],
  ['credit', { account: 'a', amount: '5', pad: 'x'.repeat(maxPayloadBytes) }, 'payload'],
  // holds
  ['hold', { account: 'a', amount: '5', ttl_seconds: 0 }, 'ttl_seconds'],
  ['hold', { account: 'a', amount: '5', ttl_seconds: 1.5 }, 'ttl_seconds'],
  ['hold', { account: 'a', amount: '5', ttl_seconds: 31 * 24 * 3600 }, 'ttl_seconds'],
  ['hold', { account: 'a', amount: '5', expires_at: 'tomorrow' }, 'expires_at'],
  ['hold', { account: 'a', amount: '5', expires_at: '2030-01-01T00:00:00' }, 'expires_at'],
  ['hold', { account: 'a', amount: '5', expires_at: '2030-01-01T00:00:00Z', ttl_seconds: 5 }, 'ttl_seconds'],
  ['open_account', { account: 'a', currency: 'usd' }, 'currency'],
  ['open_account', { account: 'a', currency: 'USDT' }, 'currency'],
  // account policies: a limit is an amount or 0; a ceiling may also be null; set_limits sets one at least
  ['set_limits', { account: 'a' }, 'overdraft_limit'],
  ['set_limits', { account: 'a', overdraft_limit: '-1' }, 'overdraft_limit'],
  ['set_limits', { account: 'a', overdraft_limit: -1 }, 'overdraft_limit'],
  ['set_limits', { account: 'a', overdraft_limit: null }, 'overdraft_limit'],
  ['set_limits', { account: 'a', overdraft_limit: '00' }, 'overdraft_limit'],
  ['set_limits', { account: 'a', overdraft_limit: '9223372036854775808' }, 'overdraft_limit'],
  ['set_limits', { account: 'a', max_balance: '1.5' }, 'max_balance'],
  ['set_limits', { account: 'a', max_balance: 'none' }, 'max_balance'],
  ['set_limits', { account: 'a', max_balance: false }, 'max_balance'],
  ['set_limits', { overdraft_limit: '5' }, 'account'],
  ['set_limits', { account: 'a', overdraft_limit: '5', max: '5' }, 'max'],
  ['freeze', {}, 'account'],
  ['freeze', { account: 'a', reason: 'fraud' }, 'reason'],
  ['unfreeze', { account: 'a b' }, 'account'],
  ['close_account', { account: 5 }, 'account'],
];

t.test('every bad payload is refused with a message that names the field', async (t) => {
  for (const [task, payload, field] of refusals) {
    const parsed = parse(task, payload);
    const label = `${task} ${describe(payload)}`;
    if (parsed.ok) {
      t.fail(`${label} was accepted`);
      continue;
    }
    t.ok(parsed.message.startsWith(`${field}: `), `${label} -> ${parsed.message.slice(0, 120)}`);
    t.ok(parsed.message.length < 300, 'the message stays short');
    t.doesNotThrow(() => JSON.parse(parsed.request), 'the stored request is JSON text');
    t.ok(!parsed.request.includes('\u0000'), 'the stored request has no raw NUL (\\u0000 stays escaped)');
    t.ok(parsed.request.isWellFormed(), 'the stored request has no raw lone surrogate');
    t.ok(!parsed.message.includes('\u0000') && parsed.message.isWellFormed(), 'the message fits a text column');
  }
});

t.test('the refusal keeps the claimed id when it is usable, else the job id', async (t) => {
  const withId = parse('credit', { id: 'c-1', account: 'a', amount: '-1' });
  t.equal(withId.ok ? '' : withId.id, 'c-1');
  const nulId = parse('credit', { id: 'c\u0000', account: 'a', amount: '1' });
  t.equal(nulId.ok ? '' : nulId.id, 'job:7');
  const deep = parse('credit', { id: 'c-deep', account: 'a', amount: '1', metadata: nested(50_000) });
  t.equal(deep.ok ? '' : deep.id, 'c-deep');
  t.same(JSON.parse(deep.request), { id: 'c-deep', nested_too_deeply: 'metadata' }, 'a too-deep payload is not stored');
  const again = parse('credit', { id: 'c-deep', account: 'a', amount: '1', metadata: nested(50_000) });
  t.equal(again.fingerprint, deep.fingerprint, 'the same refusal sent again is a replay, not a conflict');
});

t.test('a batch element needs an id of its own', async (t) => {
  const parsed = parse('credit', { account: 'a', amount: '5' }, true);
  t.notOk(parsed.ok);
  t.match(parsed.ok ? '' : parsed.message, /^id: is required/);
  t.ok(parse('credit', { id: 'b-1', account: 'a', amount: '5' }, true).ok);
});

t.test('valid payloads parse to exact bigints and typed commands', async (t) => {
  const accepted: [Task, unknown, Record<string, unknown>][] = [
    [
      'credit',
      { account: 'a', amount: '9223372036854775807' },
      { type: 'credit', id: 'job:7', account: 'a', amount: 9223372036854775807n },
    ],
    ['credit', { account: 'a', amount: 2 ** 53 - 1 }, { amount: 9007199254740991n }],
    ['credit', { account: 'a', amount: 1e3 }, { amount: 1000n }],
    ['debit', { id: 'd', account: 'A-z_0.9:x@y', amount: '1' }, { id: 'd', account: 'A-z_0.9:x@y', amount: 1n }],
    ['open_account', { account: 'a' }, { currency: 'USD' }],
    ['open_account', { account: 'a'.repeat(64), currency: 'EUR' }, { currency: 'EUR' }],
    ['transfer', { from: 'a', to: 'a', amount: '1' }, { from: 'a', to: 'a' }],
    ['hold', { id: 'h1', account: 'a', amount: '5', ttl_seconds: 30 }, { hold: 'h1', ttlSeconds: 30 }],
    ['hold', { account: 'a', amount: '5', hold: 'named' }, { hold: 'named' }],
    ['capture', { hold: 'h' }, { type: 'capture', hold: 'h' }],
    ['capture', { hold: 'h', amount: 3, to: 'b' }, { amount: 3n, to: 'b' }],
    ['release', { hold: 'h', metadata: { order: 42, tags: ['a'] } }, { metadata: { order: 42, tags: ['a'] } }],
    ['credit', { account: 'a', amount: '5', metadata: nested(8) }, { amount: 5n }],
    ['credit', { id: 'é'.repeat(128), account: 'a', amount: '5' }, { id: 'é'.repeat(128) }],
    // 65 and 128 emoji are 65 and 128 characters (130 and 256 UTF-16 units)
    ['credit', { id: '\u{1F600}'.repeat(65), account: 'a', amount: '5' }, { id: '\u{1F600}'.repeat(65) }],
    ['credit', { id: '\u{1F600}'.repeat(128), account: 'a', amount: '5' }, { id: '\u{1F600}'.repeat(128) }],
    ['release', { hold: '\u{1F600}'.repeat(128) }, { hold: '\u{1F600}'.repeat(128) }],
    ['hold', { account: 'a', amount: '5', hold: '\u{1F600}'.repeat(128) }, { hold: '\u{1F600}'.repeat(128) }],
    ['expire_hold', { hold: 'h' }, { type: 'expire', id: 'expire:h' }],
    ['set_limits', { account: 'a', overdraft_limit: '0' }, { type: 'set_limits', overdraftLimit: 0n }],
    ['set_limits', { account: 'a', overdraft_limit: 0, max_balance: 0 }, { overdraftLimit: 0n, maxBalance: 0n }],
    [
      'set_limits',
      { account: 'a', overdraft_limit: '9223372036854775807', max_balance: null },
      { overdraftLimit: 9223372036854775807n, maxBalance: null },
    ],
    ['freeze', { account: 'a' }, { type: 'freeze', account: 'a' }],
    ['unfreeze', { account: 'a' }, { type: 'unfreeze', account: 'a' }],
    ['close_account', { account: 'a' }, { type: 'close_account', account: 'a' }],
  ];
  for (const [task, payload, expected] of accepted) {
    const parsed = parse(task, payload);
    t.ok(parsed.ok, `${task} ${describe(payload)} ${parsed.ok ? '' : parsed.message}`);
    if (parsed.ok) t.match(parsed.command, expected);
  }
});

t.test('fingerprints: key order does not matter, the amount spelling does', async (t) => {
  t.equal(
    fingerprintOf('credit', { account: 'a', amount: '5' }),
    fingerprintOf('credit', { amount: '5', account: 'a' }),
  );
  t.not(fingerprintOf('credit', { account: 'a', amount: '5' }), fingerprintOf('credit', { account: 'a', amount: 5 }));
  t.not(fingerprintOf('credit', { account: 'a', amount: '5' }), fingerprintOf('debit', { account: 'a', amount: '5' }));
  t.equal(canonicalJson({ b: [1, { d: 1, c: 2 }], a: null }), '{"a":null,"b":[1,{"c":2,"d":1}]}');
  t.not(
    fingerprintOf('credit', { metadata: { n: 'a\u0000b' } }),
    fingerprintOf('credit', { metadata: { n: 'a\uFFFDb' } }),
    'strings exactly',
  );
  t.not(
    fingerprintOf('credit', readPayloadJson('{"n":1e3}')),
    fingerprintOf('credit', readPayloadJson('{"n":1000}')),
    'numbers by their text',
  );
  t.not(
    fingerprintOf('credit', readPayloadJson('{"n":12345678901234567890}')),
    fingerprintOf('credit', readPayloadJson('{"n":12345678901234567891}')),
  );
});

t.test('parseCommand never throws, whatever it is given', async (t) => {
  const odd: unknown[] = [
    undefined,
    Symbol('x'),
    () => 1,
    new Date(0),
    Object.create(null),
    { account: 'a', amount: 10n },
  ];
  for (const payload of odd) {
    t.doesNotThrow(() => parse('credit', payload));
    t.notOk(parse('credit', payload).ok);
  }
});

function describe(payload: unknown): string {
  const text = (() => {
    try {
      return JSON.stringify(payload) ?? String(payload);
    } catch {
      return String(payload);
    }
  })();
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}

// Payloads as the worker reads them: from JSON text, numbers kept as written (issue 9).
const fromText = (task: Task, text: string) =>
  parseCommand({ task, payload: readPayloadJson(text), defaultId: 'job:7', defaultCurrency: 'USD' });

t.test('amounts and ttl_seconds are judged by their JSON text', async (t) => {
  for (const amount of [
    '0.99999999999999999',
    '1.9999999999999999',
    '1e3',
    '1E2',
    '1.0',
    '-0',
    '1e400',
    '9007199254740993',
    '10e-1',
  ]) {
    const parsed = fromText('credit', `{"account":"a","amount":${amount}}`);
    t.notOk(parsed.ok, `amount ${amount} refused`);
    t.match(parsed.ok ? '' : parsed.message, /^amount: /);
    t.ok(parsed.request.includes(`"amount":${amount}`));
  }
  for (const ttl of ['1.0', '6e1', '60.5', '0', '-1', '"60"', 'true', '2592001']) {
    const parsed = fromText('hold', `{"account":"a","amount":"5","ttl_seconds":${ttl}}`);
    t.notOk(parsed.ok, `ttl_seconds ${ttl} refused`);
    t.match(parsed.ok ? '' : parsed.message, /^ttl_seconds: /);
  }
  for (const limit of ['0.0', '0e0', '-0', '1e3', '1.0']) {
    const parsed = fromText('set_limits', `{"account":"a","overdraft_limit":${limit}}`);
    t.notOk(parsed.ok, `overdraft_limit ${limit} refused`);
    t.match(parsed.ok ? '' : parsed.message, /^overdraft_limit: .*0 or more/);
  }
  const zero = fromText('set_limits', '{"account":"a","overdraft_limit":0,"max_balance":null}');
  t.match(zero.ok ? zero.command : zero.message, { overdraftLimit: 0n, maxBalance: null });
  const ok = fromText('hold', '{"account":"a","amount":9007199254740991,"ttl_seconds":2592000}');
  t.match(ok.ok ? ok.command : ok.message, { amount: 9007199254740991n, ttlSeconds: 2592000 });
  t.equal(ok.request, '{"account":"a","amount":9007199254740991,"ttl_seconds":2592000}');
});

t.test('metadata is kept digit for digit, and strings exactly', async (t) => {
  const text =
    '{"id":"m","account":"a","amount":"5","metadata":{"order":12345678901234567890,"big":1e400,"s":"a\\ufffdb\\u00e9","small":1.5e-16382}}';
  const parsed = fromText('credit', text);
  t.ok(parsed.ok, parsed.ok ? '' : parsed.message);
  t.equal(
    parsed.request,
    '{"id":"m","account":"a","amount":"5","metadata":{"order":12345678901234567890,"big":1e400,"s":"a\ufffdb\u00e9","small":1.5e-16382}}',
  );
});

t.test(
  "what jsonb cannot hold is refused under the sender's id, and the request stored is one jsonb can",
  async (t) => {
    for (const [json, field] of [
      ['{"id":"n1","account":"a","amount":"5","metadata":{"s":"a\\u0000b"}}', 'metadata.s'],
      ['{"id":"n2","account":"a","amount":"5","metadata":{"x":[{"\\ud800":1}]}}', 'metadata.x.0.\uFFFD'],
      ['{"id":"n3","account":"a","amount":"5","metadata":{"n":1e131072}}', 'metadata.n'],
      ['{"id":"n4","account":"a","amount":"5","metadata":{"n":1.5e-16383}}', 'metadata.n'],
      ['{"id":"n5","account":"a","amount":"5","metadata":{"n":0e-16384}}', 'metadata.n'],
    ] as const) {
      const parsed = fromText('credit', json);
      t.match(
        parsed.ok ? 'accepted' : [parsed.id, parsed.message],
        [JSON.parse(json).id, new RegExp(`^${field.replace('.', '\\.')}: `)],
        json,
      );
      t.notMatch(parsed.request, /\\u0000|\\ud[89a-f]/i, 'the request holds no escape jsonb refuses');
      t.notMatch(parsed.request, /:-?[\d.]+e/i, 'a number beyond numeric is stored as a string');
    }
    t.ok(
      fromText('credit', '{"account":"a","amount":"5","metadata":{"n":12e131070,"m":0e200000}}').ok,
      'within numeric',
    );
  },
);

t.test('wrong types are named as wrong, not as missing', async (t) => {
  const cases = wrongTypeCases('a') as [Task, string, RegExp][];
  for (const [task, text, message] of cases) {
    const parsed = fromText(task, text);
    t.match(parsed.ok ? 'accepted' : parsed.message, message, text);
  }
});

t.test("ids the service derives are refused from clients; derived ids of any length are the service's", async (t) => {
  for (const id of ['job:1', 'job:', 'expire:h', 'expire:']) {
    t.match(commandIdProblem(id), /ids the service derives/);
    const parsed = fromText('credit', `{"id":${JSON.stringify(id)},"account":"a","amount":"1"}`);
    t.match(parsed.ok ? '' : [parsed.id, parsed.message], ['job:7', /^id: /]);
  }
  t.match(fromText('hold', '{"id":"h","account":"a","amount":"1","hold":"expire:x"}'), {
    ok: false,
    message: /^hold: /,
  });
  t.ok(fromText('release', '{"hold":"job:5"}').ok, 'a hold that took a derived id can be released');
  const long = 'h'.repeat(128);
  const expire = parseCommand({
    task: 'expire_hold',
    payload: readPayloadJson(`{"hold" : "${long}"}`),
    defaultId: 'job:7',
    defaultCurrency: 'USD',
  });
  t.match(expire.ok ? expire.command : expire.message, { id: `expire:${long}` });
  t.equal(commandIdProblem(''), 'must not be empty');
  t.equal(commandIdProblem('JOB:1'), undefined);
});

t.test('a payload over 64 KiB or too deep is refused before it is parsed', async (t) => {
  const big = `{"pad":"${'x'.repeat(maxPayloadBytes)}","id":"big-1","account":"a","amount":"1"}`;
  const parsed = fromText('credit', big);
  t.match(parsed, { ok: false, id: 'big-1', message: /^payload: is \d+ bytes/ });
  t.ok(parsed.request.length < 300, 'the request is a summary');
  t.equal(fromText('credit', big).fingerprint, parsed.fingerprint, 'the same payload again is a replay');
  t.not(fromText('credit', big.replace('"1"}', '"2"}')).fingerprint, parsed.fingerprint, 'another one is not');
  const empties = `[${'{},'.repeat(700_000)}{}]`;
  t.match(fromText('credit', empties), { ok: false, id: 'job:7', message: /^payload: is \d+ bytes/ });
  const deepText = `{"id":"deep-1","account":"a","metadata":${'['.repeat(20_000)}${']'.repeat(20_000)},"amount":"1"}`;
  t.match(fromText('credit', deepText), { ok: false, id: 'deep-1', message: /^metadata: must be nested at most 8/ });
  t.match(
    fromText('credit', `{"metadata":${'['.repeat(40)}${']'.repeat(40)},"id":"after-deep"}`),
    { id: 'after-deep' },
    'an id after the deep field',
  );
  const deepTop = `${'['.repeat(40)}${']'.repeat(40)}`;
  t.match(fromText('credit', deepTop), { ok: false, message: /^payload: is nested more than 32/ });
  t.match(
    fromText(
      'credit',
      '{"a\\"id":"x","id":"real","n":{"id":"inner"},"account":"a","amount":"1","deep":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}',
    ),
    { ok: false, id: 'real', message: /^deep: is nested more than 32/ },
    'the scan finds the top-level id, not a look-alike',
  );
  const twice = `{"id":"first","id":"last","account":"a","amount":"1","pad":"${'x'.repeat(maxPayloadBytes)}"}`;
  t.match(fromText('credit', twice), { id: 'last' }, 'the last id wins, as in JSON.parse');
  t.match(fromText('credit', twice.replace('"last"', '5')), { id: 'job:7' }, 'a last id that is not a string is no id');
});
