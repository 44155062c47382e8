import t from 'tap';
import type { CommandType } from '../src/commands/codes.ts';
import { canonicalJson, fingerprintOf, maxPayloadBytes, parseCommand, storableJson } from '../src/commands/parse.ts';

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
  ['credit', { account: 'a', amount: '5', metadata: { note: 'x\uDFFF' } }, 'metadata.note'],
  ['credit', { account: 'a', amount: '5', metadata: { 'k\u0000': 1 } }, 'metadata.k\uFFFD'],
  ['credit', { 'acc\u0000ount': 'a', amount: '5' }, 'acc\uFFFDount'],
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
    t.doesNotThrow(() => JSON.stringify(parsed.request));
    t.ok(!JSON.stringify(parsed.request).includes('\\u0000'), 'the stored request has no NUL');
    t.ok(JSON.stringify(parsed.request).isWellFormed(), 'the stored request has no lone surrogate');
  }
});

t.test('the refusal keeps the claimed id when it is usable, else the job id', async (t) => {
  const withId = parse('credit', { id: 'c-1', account: 'a', amount: '-1' });
  t.equal(withId.ok ? '' : withId.id, 'c-1');
  const nulId = parse('credit', { id: 'c\u0000', account: 'a', amount: '1' });
  t.equal(nulId.ok ? '' : nulId.id, 'job:7');
  const deep = parse('credit', { id: 'c-deep', account: 'a', amount: '1', metadata: nested(50_000) });
  t.equal(deep.ok ? '' : deep.id, 'c-deep');
  t.same(deep.request, { id: 'c-deep', nested_too_deeply: 'metadata' }, 'a too-deep payload is not stored');
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
    ['credit', { account: 'a', amount: '9223372036854775807' }, { type: 'credit', id: 'job:7', account: 'a', amount: 9223372036854775807n }],
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
    ['expire_hold', { hold: 'h' }, { type: 'expire', id: 'expire:h' }],
  ];
  for (const [task, payload, expected] of accepted) {
    const parsed = parse(task, payload);
    t.ok(parsed.ok, `${task} ${describe(payload)} ${parsed.ok ? '' : parsed.message}`);
    if (parsed.ok) t.match(parsed.command, expected);
  }
});

t.test('fingerprints: key order does not matter, the amount spelling does', async (t) => {
  t.equal(fingerprintOf('credit', { account: 'a', amount: '5' }), fingerprintOf('credit', { amount: '5', account: 'a' }));
  t.not(fingerprintOf('credit', { account: 'a', amount: '5' }), fingerprintOf('credit', { account: 'a', amount: 5 }));
  t.not(fingerprintOf('credit', { account: 'a', amount: '5' }), fingerprintOf('debit', { account: 'a', amount: '5' }));
  t.equal(canonicalJson({ b: [1, { d: 1, c: 2 }], a: null }), '{"a":null,"b":[1,{"c":2,"d":1}]}');
  t.same(storableJson({ 'k\u0000': 'v\uD800' }), { 'k\uFFFD': 'v\uFFFD' });
});

t.test('parseCommand never throws, whatever it is given', async (t) => {
  const odd: unknown[] = [undefined, Symbol('x'), () => 1, new Date(0), Object.create(null), { account: 'a', amount: 10n }];
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
